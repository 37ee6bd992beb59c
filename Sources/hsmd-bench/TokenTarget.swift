import Foundation
import Synchronization
import Vault

/// The operations through hsmd's own token layer (`VaultToken`) with no daemon around it, on a
/// token opened directly (`DirectToken`) or through the p11-kit server (`P11KitPeer`).
final class TokenTarget {
    private let token: VaultToken
    private let afterClose: () -> Void
    private var keys: [BenchKey: TokenKeyID] = [:]

    init(token: VaultToken, afterClose: @escaping () -> Void) {
        self.token = token
        self.afterClose = afterClose
    }

    func createKey(_ key: BenchKey, run: String) throws {
        let id = try TokenKeyID(name: key.name(run: run), version: try token.newVersion())
        try token.generate(id, spec: key.spec, usage: KeyUsage.defaults(for: key.spec))
        keys[key] = id
    }

    /// The call an operation makes, given the worker's index, tried once before it is timed.
    func prepare(_ operation: BenchOperation) throws -> @Sendable (Int) throws -> Void {
        let call = try makeCall(operation)
        try call(0)
        return call
    }

    /// Makes the fixtures an operation needs, once, and the call that uses them.
    private func makeCall(_ operation: BenchOperation) throws -> @Sendable (Int) throws -> Void {
        let token = self.token
        func key() throws -> TokenKeyID {
            guard let key = operation.key else { throw BenchError.setup("\(operation.id) names no key") }
            return try keyID(key)
        }
        switch operation.action {
        case .sign(let alg, let digestLength):
            let id = try key()
            let algorithm = try signatureAlgorithm(alg)
            let digest = randomBytes(digestLength)
            return { _ in _ = try token.sign(id, algorithm: algorithm, digest: digest) }
        case .verify(let alg, let digestLength):
            let id = try key()
            let algorithm = try signatureAlgorithm(alg)
            let digest = randomBytes(digestLength)
            let signature = try token.sign(id, algorithm: algorithm, digest: digest)
            return { _ in
                guard try token.verify(id, algorithm: algorithm, digest: digest, signature: signature) else {
                    throw BenchError.run("the signature did not verify")
                }
            }
        case .rsaDecrypt(let alg):
            let id = try key()
            let algorithm = try encryptionAlgorithm(alg)
            let ciphertext = try token.encrypt(id, algorithm: algorithm, plaintext: randomBytes(32)).value
            return { _ in _ = try token.decrypt(id, algorithm: algorithm, ciphertext: ciphertext) }
        case .gcmEncrypt(let bytes):
            let id = try key()
            let plaintext = randomBytes(bytes)
            return { _ in _ = try token.encrypt(id, algorithm: .a256GCM, plaintext: plaintext) }
        case .gcmDecrypt(let bytes):
            let id = try key()
            let sealed = try token.encrypt(id, algorithm: .a256GCM, plaintext: randomBytes(bytes))
            return { _ in
                _ = try token.decrypt(id, algorithm: .a256GCM, ciphertext: sealed.value, iv: sealed.iv, tag: sealed.tag)
            }
        case .wrap(let alg, let bytes):
            let id = try key()
            guard let algorithm = WrapAlgorithm(rawValue: alg) else { throw BenchError.setup("unknown wrap algorithm \(alg)") }
            let keyBytes = randomBytes(bytes)
            return { _ in _ = try token.wrap(id, algorithm: algorithm, keyBytes: keyBytes) }
        case .getKey:
            let id = try key()
            // The token layer's part of a get: the index lookup and the public key.
            return { _ in _ = try token.key(id).publicKey }
        case .createKey:
            let spec = BenchKey.p256.spec
            return { worker in
                let version = try TokenKeyID(name: "bench-create-w\(worker)", version: try token.newVersion())
                try token.generate(version, spec: spec, usage: KeyUsage.defaults(for: spec))
            }
        case .randomBytes(let count):
            return { _ in _ = try token.randomBytes(count: count) }
        }
    }

    /// Runs the call on `concurrency` threads of its own, as many as the socket run has connections.
    func measure(_ call: @escaping @Sendable (Int) throws -> Void, concurrency: Int, plan: RunPlan) -> Measurement {
        let results = Mutex<[WorkerSamples]>([])
        let finished = DispatchGroup()
        for worker in 0..<concurrency {
            finished.enter()
            let thread = Thread {
                var samples = WorkerSamples(expectedCount: plan.requestsPerWorker ?? 4096)
                var now = monotonicNanoseconds()
                while plan.continues(now: now, measured: samples.latencies.count + samples.errors) {
                    let sentAt = now
                    do {
                        try call(worker)
                        now = monotonicNanoseconds()
                        samples.record(sentAt: sentAt, completedAt: now, plan: plan)
                    } catch {
                        now = monotonicNanoseconds()
                        samples.recordError("\(error)")
                    }
                }
                results.withLock { $0.append(samples) }
                finished.leave()
            }
            thread.start()
        }
        finished.wait()
        return Measurement(results.withLock { $0 }, plan: plan)
    }

    /// Closes the token, then lets its opener remove what it set up.
    func close() {
        token.close()
        afterClose()
    }

    private func keyID(_ key: BenchKey) throws -> TokenKeyID {
        guard let id = keys[key] else { throw BenchError.setup("no \(key.rawValue) key in the direct token") }
        return id
    }

    private func signatureAlgorithm(_ name: String) throws -> SignatureAlgorithm {
        guard let algorithm = SignatureAlgorithm(rawValue: name) else { throw BenchError.setup("unknown signature algorithm \(name)") }
        return algorithm
    }

    private func encryptionAlgorithm(_ name: String) throws -> EncryptionAlgorithm {
        guard let algorithm = EncryptionAlgorithm(rawValue: name) else { throw BenchError.setup("unknown encryption algorithm \(name)") }
        return algorithm
    }
}
