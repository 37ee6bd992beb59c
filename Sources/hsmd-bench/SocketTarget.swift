import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// hsmd as clients see it: the keys API over the Unix socket, through keep-alive connections.
final class SocketTarget {
    static let apiVersion = "7.6"

    let socketPath: String
    private let group: MultiThreadedEventLoopGroup
    /// For set-up and clean-up; idle while the workers measure, so hsmd may close it meanwhile.
    private var control: KeepAliveConnection
    /// Every key name this run may have created, for the clean-up.
    private var createdNames: Set<String> = []

    init(socketPath: String, eventLoops: Int) throws {
        self.socketPath = socketPath
        group = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops)
        do {
            control = try KeepAliveConnection.connect(socketPath: socketPath, on: group.next())
        } catch {
            try? group.syncShutdownGracefully()
            throw BenchError.setup("cannot connect to hsmd at \(socketPath): \(error)")
        }
        _ = try call(.GET, "/health")
    }

    /// Sends a set-up or clean-up request, on a new control connection if hsmd closed the last one
    /// (also when it closes while the request goes out: every control request may be sent twice).
    private func controlExchange(_ request: PreparedRequest) throws -> BenchResponse {
        if !control.isActive {
            control = try KeepAliveConnection.connect(socketPath: socketPath, on: group.next())
        }
        do {
            return try control.exchange(request)
        } catch ConnectionError.closed {
            control = try KeepAliveConnection.connect(socketPath: socketPath, on: group.next())
            return try control.exchange(request)
        }
    }

    // MARK: Keys and fixtures

    func createKey(_ key: BenchKey, run: String) throws {
        let name = key.name(run: run)
        createdNames.insert(name)
        _ = try call(.POST, keyPath(name, "create"), key.createBody)
    }

    /// The request an operation sends, one per worker (creation gives each worker a key name of its own).
    func prepare(_ operation: BenchOperation, run: String) throws -> @Sendable (Int) -> PreparedRequest {
        let name = operation.key?.name(run: run) ?? ""
        let request: PreparedRequest
        switch operation.action {
        case .sign(let alg, let digestLength):
            request = try post(keyPath(name, "sign"), ["alg": alg, "value": Base64URL.encode(randomBytes(digestLength))])
        case .verify(let alg, let digestLength):
            let digest = Base64URL.encode(randomBytes(digestLength))
            let signature = try call(.POST, keyPath(name, "sign"), ["alg": alg, "value": digest])["value"] ?? ""
            request = try post(keyPath(name, "verify"), ["alg": alg, "digest": digest, "value": signature])
        case .rsaDecrypt(let alg):
            let sealed = try call(.POST, keyPath(name, "encrypt"), ["alg": alg, "value": Base64URL.encode(randomBytes(32))])
            request = try post(keyPath(name, "decrypt"), ["alg": alg, "value": sealed["value"] ?? ""])
        case .gcmEncrypt(let bytes):
            request = try post(keyPath(name, "encrypt"), ["alg": "A256GCM", "value": Base64URL.encode(randomBytes(bytes))])
        case .gcmDecrypt(let bytes):
            let sealed = try call(.POST, keyPath(name, "encrypt"), ["alg": "A256GCM", "value": Base64URL.encode(randomBytes(bytes))])
            request = try post(keyPath(name, "decrypt"), [
                "alg": "A256GCM", "value": sealed["value"] ?? "", "iv": sealed["iv"] ?? "", "tag": sealed["tag"] ?? "",
            ])
        case .wrap(let alg, let bytes):
            request = try post(keyPath(name, "wrapkey"), ["alg": alg, "value": Base64URL.encode(randomBytes(bytes))])
        case .getKey:
            request = PreparedRequest(.GET, keyPath(name, nil))
        case .createKey:
            let body = try JSONSerialization.data(withJSONObject: BenchKey.p256.createBody)
            let workerNames = (0..<BenchCommand.maximumConcurrency).map { "bench-create-\(run)-w\($0)" }
            createdNames.formUnion(workerNames)
            let requests = workerNames.map { PreparedRequest(.POST, keyPath($0, "create"), json: Array(body)) }
            return { requests[$0] }
        case .randomBytes(let count):
            request = try post("/rng?api-version=\(Self.apiVersion)", ["count": count])
        }
        // Proves the request works once before it is timed.
        _ = try check(try controlExchange(request), request.head.uri)
        return { _ in request }
    }

    // MARK: Measuring

    /// Runs the operation on `concurrency` fresh keep-alive connections.
    func measure(_ requests: @Sendable (Int) -> PreparedRequest, concurrency: Int, plan: () -> RunPlan) throws -> Measurement {
        let connections = try (0..<concurrency).map { _ in
            try KeepAliveConnection.connect(socketPath: socketPath, on: group.next())
        }
        defer { connections.forEach { $0.close() } }
        let plan = plan()
        let futures = connections.enumerated().map { worker, connection in connection.load(requests(worker), plan: plan) }
        let samples = try futures.map { try $0.wait() }
        return Measurement(samples, plan: plan)
    }

    // MARK: Clean-up

    /// Deletes and purges every key the run created; returns what could not be removed.
    func removeCreatedKeys() -> [String] {
        var failures: [String] = []
        for name in createdNames.sorted() {
            do {
                let deleted = try controlExchange(PreparedRequest(.DELETE, "/keys/\(name)?api-version=\(Self.apiVersion)"))
                if deleted.status == 404 { continue }
                _ = try check(deleted, "delete \(name)")
                _ = try check(
                    try controlExchange(PreparedRequest(.DELETE, "/deletedkeys/\(name)?api-version=\(Self.apiVersion)")),
                    "purge \(name)")
            } catch {
                failures.append("\(name): \(error)")
            }
        }
        return failures
    }

    func close() {
        control.close()
        try? group.syncShutdownGracefully()
    }

    // MARK: Requests

    private func keyPath(_ name: String, _ operation: String?) -> String {
        "/keys/\(name)\(operation.map { "/\($0)" } ?? "")?api-version=\(Self.apiVersion)"
    }

    private func post(_ target: String, _ body: [String: any Sendable]) throws -> PreparedRequest {
        PreparedRequest(.POST, target, json: Array(try JSONSerialization.data(withJSONObject: body)))
    }

    /// Sends a set-up request and returns the string fields of its JSON answer.
    @discardableResult
    private func call(_ method: HTTPMethod, _ target: String, _ body: [String: any Sendable]? = nil) throws -> [String: String] {
        let request = try body.map { try post(target, $0) } ?? PreparedRequest(method, target)
        let answer = try check(try controlExchange(request), target)
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any]
        return object?.compactMapValues { $0 as? String } ?? [:]
    }

    private func check(_ response: BenchResponse, _ what: String) throws -> BenchResponse {
        guard (200..<300).contains(response.status) else {
            throw BenchError.setup("\(what): HTTP \(response.status) \(String(decoding: response.body, as: UTF8.self).prefix(300))")
        }
        return response
    }
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}
