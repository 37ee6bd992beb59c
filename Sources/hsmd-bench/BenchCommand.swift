import ArgumentParser
import Foundation
import Vault

@main
struct BenchCommand: ParsableCommand {
    /// Connections (and direct threads) one measurement may use.
    static let maximumConcurrency = 256

    static let configuration = CommandConfiguration(
        commandName: "hsmd-bench",
        abstract: "Measures a running hsmd over its Unix socket, against hsmd's token layer alone and openssl speed.",
        discussion: """
            Each operation runs on N keep-alive connections (one request in flight per connection) for a \
            fixed time or count. Then the same operation runs through hsmd's own token layer (VaultToken) on \
            N threads: directly, on a throwaway SoftHSM2 token this tool provisions in a temporary state \
            directory (hsmd keeps owning its own), and through a peer, another throwaway token served by \
            p11-kit server and loaded through p11-kit-client.so. openssl speed measures the same primitive \
            as the crypto's ceiling. The tool creates the keys it needs (named bench-…) and deletes and purges them after.

            Examples:
              hsmd-bench --socket tokens/dev/hsmd.sock
              hsmd-bench --socket tokens/dev/hsmd.sock --concurrency 2 16 --duration 5 --output json
              hsmd-bench --socket tokens/dev/hsmd.sock --operations p256-es256-sign get-key --skip-openssl
              hsmd-bench --socket tokens/dev/hsmd.sock --quick
            """)

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @Option(help: ArgumentHelp("hsmd's Unix socket (default: $HSMD_SOCKET).", valueName: "PATH"))
    var socket: String?

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Connections per operation; each level is a run of its own (default: 2 16; --quick: 2).", valueName: "N"))
    var concurrency: [Int] = []

    @Option(help: ArgumentHelp("Seconds each operation is measured (default: 3; --quick: 0.3).", valueName: "SECONDS"))
    var duration: Double?

    @Option(help: ArgumentHelp("Requests per operation instead of a duration, shared by the connections.", valueName: "N"))
    var count: Int?

    @Option(help: ArgumentHelp("Seconds each operation runs before it is measured (default: 0.5; --quick: 0.1).", valueName: "SECONDS"))
    var warmup: Double?

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Operations to run, by id (see --list-operations; default: all, --quick: a few).", valueName: "ID"))
    var operations: [String] = []

    @Flag(help: "A run of a few seconds: a few operations, short windows, concurrency 2.")
    var quick = false

    @Flag(help: "Skip the direct baseline through hsmd's token layer.")
    var skipDirect = false

    @Flag(help: "Skip the peer baseline through p11-kit server and p11-kit-client.so.")
    var skipPeer = false

    @Flag(name: .customLong("skip-openssl"), help: "Skip the openssl speed baseline.")
    var skipOpenSSL = false

    @Option(help: ArgumentHelp("PKCS#11 module of the direct baseline's token.", valueName: "PATH"))
    var module = TokenProvisioner.Options().modulePath

    @Option(name: .customLong("p11-kit"), help: ArgumentHelp("The p11-kit executable that serves the peer's token.", valueName: "PATH"))
    var p11kit = "/usr/bin/p11-kit"

    @Option(name: .customLong("p11-kit-client"), help: ArgumentHelp("p11-kit's client module, through which the peer's token is loaded.", valueName: "PATH"))
    var p11kitClient = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"

    @Option(help: ArgumentHelp("The openssl executable.", valueName: "PATH"))
    var openssl = "/usr/bin/openssl"

    @Option(help: ArgumentHelp("Seconds of each openssl speed measurement (its smallest unit is 1).", valueName: "SECONDS"))
    var opensslSeconds = 1

    @Option(help: ArgumentHelp("table or json.", valueName: "FORMAT"))
    var output = OutputFormat.table

    @Flag(help: "Print the operations' ids and exit.")
    var listOperations = false

    func validate() throws {
        if !listOperations && resolvedSocket == nil {
            throw ValidationError("name hsmd's socket with --socket PATH or $HSMD_SOCKET")
        }
        if let bad = concurrency.first(where: { !(1...Self.maximumConcurrency).contains($0) }) {
            throw ValidationError("--concurrency \(bad): must be 1 to \(Self.maximumConcurrency)")
        }
        if duration != nil && count != nil {
            throw ValidationError("measure for a --duration or a --count, not both")
        }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let warmup, warmup < 0 { throw ValidationError("--warmup must not be negative") }
        if opensslSeconds < 1 { throw ValidationError("--openssl-seconds must be at least 1") }
        let known = Set(BenchOperation.all.map(\.id))
        if let unknown = operations.first(where: { !known.contains($0) }) {
            throw ValidationError("unknown operation '\(unknown)'; --list-operations shows them")
        }
    }

    func run() throws {
        if listOperations {
            for operation in BenchOperation.all {
                print("\(operation.id.padding(toLength: 26, withPad: " ", startingAt: 0)) \(operation.title)")
            }
            return
        }
        let report = try BenchRunner(settings: settings).run()
        switch output {
        case .table:
            print(TableRenderer.render(report), terminator: "")
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
        if !report.cleanupFailures.isEmpty { throw ExitCode(2) }
    }

    private var resolvedSocket: String? { socket ?? ProcessInfo.processInfo.environment["HSMD_SOCKET"] }

    /// The options with --quick's and the defaults filled in.
    private var settings: BenchSettings {
        let selected = operations.isEmpty
            ? BenchOperation.all.filter { !quick || $0.quick }
            : BenchOperation.all.filter { operations.contains($0.id) }
        return BenchSettings(
            socket: resolvedSocket ?? "", operations: selected,
            concurrency: concurrency.isEmpty ? (quick ? [2] : [2, 16]) : concurrency,
            duration: count == nil ? (duration ?? (quick ? 0.3 : 3)) : nil, count: count,
            warmup: warmup ?? (quick ? 0.1 : 0.5), direct: !skipDirect, modulePath: module,
            peer: skipPeer ? nil : .init(p11kit: p11kit, clientModule: p11kitClient),
            openssl: skipOpenSSL ? nil : openssl, opensslSeconds: opensslSeconds)
    }
}

struct PeerSettings: Sendable {
    var p11kit: String
    var clientModule: String
}

struct BenchSettings: Sendable {
    var socket: String
    var operations: [BenchOperation]
    var concurrency: [Int]
    var duration: Double?
    var count: Int?
    var warmup: Double
    var direct: Bool
    var modulePath: String
    var peer: PeerSettings?
    var openssl: String?
    var opensslSeconds: Int

    func plan(workers: Int) -> RunPlan {
        if let count { return .counted(warmupSeconds: warmup, requests: count, workers: workers) }
        return .timed(warmupSeconds: warmup, durationSeconds: duration ?? 0)
    }
}
