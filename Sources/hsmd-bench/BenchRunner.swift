import Foundation

/// One benchmark run: keys and fixtures on every path, every operation at every concurrency level,
/// then the clean-up, which runs whatever happened.
struct BenchRunner {
    let settings: BenchSettings
    /// Tags this run's key names.
    let runTag = String(UInt32.random(in: .min ... .max), radix: 16)

    /// An operation ready on each path; the peer may not offer it.
    private struct Prepared {
        let operation: BenchOperation
        let socket: @Sendable (Int) -> PreparedRequest
        let direct: (@Sendable (Int) throws -> Void)?
        let peer: (@Sendable (Int) throws -> Void)?
        let peerUnavailable: String?
    }

    func run() throws -> BenchReport {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let socket = try SocketTarget(
            socketPath: settings.socket, eventLoops: min(settings.concurrency.max() ?? 1, cores))
        defer { socket.close() }
        // The peer first: it provisions its token in this process and hands it to the p11-kit server
        // before the direct token keeps SoftHSM2 initialised here.
        let peer = try settings.peer.map {
            try P11KitPeer.open(softHSMModule: settings.modulePath, p11kit: $0.p11kit, clientModule: $0.clientModule)
        }
        defer { peer?.target.close() }
        let direct = settings.direct ? try DirectToken.open(modulePath: settings.modulePath) : nil
        defer { direct?.target.close() }
        let openssl = settings.openssl.map { OpenSSLSpeed(executable: $0, seconds: settings.opensslSeconds) }

        var report = BenchReport(setup: .init(
            socket: settings.socket, directStateDirectory: direct?.directory.path, peerStateDirectory: peer?.directory.path,
            durationSeconds: settings.duration, requestsPerOperation: settings.count, warmupSeconds: settings.warmup,
            cores: cores, loadAverage: loadAverage()))
        do {
            let keys = Set(settings.operations.compactMap(\.key))
            for key in BenchKey.allCases where keys.contains(key) {
                progress("creating \(key.rawValue) keys")
                try socket.createKey(key, run: runTag)
                try direct?.target.createKey(key, run: runTag)
                try peer?.target.createKey(key, run: runTag)
            }
            let prepared = try settings.operations.map { operation in
                var peerCall: (@Sendable (Int) throws -> Void)?
                var peerUnavailable: String?
                do {
                    peerCall = try peer?.target.prepare(operation)
                } catch {
                    // p11-kit's RPC does not carry every mechanism (AES-GCM, AES key wrap in 0.24).
                    peerUnavailable = "\(error)"
                    progress("\(operation.id) is not available through the p11-kit peer: \(error)")
                }
                return Prepared(
                    operation: operation, socket: try socket.prepare(operation, run: runTag),
                    direct: try direct?.target.prepare(operation), peer: peerCall, peerUnavailable: peerUnavailable)
            }
            for concurrency in settings.concurrency {
                var results: [BenchReport.OperationResult] = []
                for path in prepared {
                    progress("\(path.operation.id) at concurrency \(concurrency)")
                    let plan = { settings.plan(workers: concurrency) }
                    var result = BenchReport.OperationResult(
                        id: path.operation.id, title: path.operation.title,
                        socket: try socket.measure(path.socket, concurrency: concurrency, plan: plan))
                    if let direct, let call = path.direct {
                        result.direct = direct.target.measure(call, concurrency: concurrency, plan: plan())
                    }
                    if let peer, let call = path.peer {
                        result.peer = peer.target.measure(call, concurrency: concurrency, plan: plan())
                    }
                    result.peerUnavailable = path.peerUnavailable
                    if let primitive = path.operation.ceiling, let openssl {
                        result.openssl = try openssl.measure(primitive, processes: min(concurrency, cores))
                    }
                    results.append(result)
                }
                report.runs.append(.init(concurrency: concurrency, operations: results))
            }
        } catch {
            for failure in socket.removeCreatedKeys() { progress("left behind: \(failure)") }
            throw error
        }
        progress("deleting and purging the bench- keys")
        report.cleanupFailures = socket.removeCreatedKeys()
        return report
    }

    private func loadAverage() -> [Double] {
        var averages = [Double](repeating: 0, count: 3)
        let count = getloadavg(&averages, 3)
        return Array(averages.prefix(max(Int(count), 0)))
    }

    private func progress(_ message: String) {
        FileHandle.standardError.write(Data("hsmd-bench: \(message)\n".utf8))
    }
}
