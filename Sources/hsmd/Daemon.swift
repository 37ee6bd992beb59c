import Foundation
import Synchronization
import Logging
import Prometheus
import NIOCore
import NIOPosix
import Audit
import CProcessHardening
import Vault
import VaultServer

/// Who starts with rights, and the operator's names for callers.
struct AccessOptions {
    let initialAdministrators: [String]
    let bindings: [PrincipalBinding]
}

/// The HTTPS listener, when the operator asks for one.
struct HTTPSOptions {
    let host: String
    let port: Int
    /// Names the certificate covers beyond localhost, 127.0.0.1 and ::1.
    let extraNames: [String]
    let tenant: String

    /// The authorities clients may reach hsmd on: the audiences its tokens may name.
    func authorities(_ names: [String]) -> [String] {
        names.map { $0.contains(":") ? "https://[\($0)]:\(port)" : "https://\($0):\(port)" }
    }
}

/// What protects the daemon from its callers: sizes, connection and queue limits, the client timeout.
struct ServerLimits {
    let maximumBodySize: Int
    let maximumHeaderSize: Int
    let maximumConnections: Int
    let maximumPendingRequests: Int
    let clientTimeoutSeconds: Int
}

/// The daemon's life: open the token, serve, and on SIGTERM or SIGINT drain and close in order.
struct Daemon {
    let directory: StateDirectory
    let provisioning: TokenProvisioner.Options
    let vaultSettings: VaultSettings?
    /// Rebuild a lost metadata store from the token instead of refusing to start.
    let rebuildMetadata: Bool
    let access: AccessOptions
    let https: HTTPSOptions?
    let socketGroup: gid_t?
    let auditRotationSize: Int
    let auditDurability: AuditDurability
    let authority: String
    let socketPath: String
    /// The listening socket systemd passed, which replaces the one at `socketPath`.
    let activatedSocket: Int32?
    let limits: ServerLimits
    /// Host and port of the loopback listener that serves only health, readiness and metrics.
    let metricsListener: (host: String, port: Int)?
    let version: String
    let metrics: PrometheusCollectorRegistry
    let logger: Logger

    func run() throws {
        // Everything hsmd creates (socket, PIN files, token files) is for its own user only.
        umask(0o077)
        // Key material passes through this process's memory: no core file may hold it, and no
        // other process of the same user may read it through ptrace or /proc/PID/mem.
        var noCoreDumps = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCoreDumps)
        if hsmd_disable_dumping() != 0 {
            logger.warning("cannot mark hsmd non-dumpable", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
        let stop = SignalWaiter(signals: [SIGTERM, SIGINT])
        let shutdown = ShutdownSequence()
        defer { shutdown.run() }

        let (token, lock) = try TokenProvisioner(directory: directory, options: provisioning, logger: logger).open()
        shutdown.add { token.close(); withExtendedLifetime(lock) {} }
        let vault = try KeyVault(
            token: token, storePath: directory.metadataStore, settings: vaultSettings, logger: logger, rebuildMetadata: rebuildMetadata)
        let accessControl = try AccessControl(
            vault: vault, initialAdministrators: access.initialAdministrators, bindings: access.bindings)
        let auditLog = try AuditLog(directory: directory.auditDirectory, rotationSize: auditRotationSize, durability: auditDurability)
        shutdown.add { auditLog.close() }
        let blockingPool = NIOThreadPool(numberOfThreads: max(2, ProcessInfo.processInfo.activeProcessorCount * 2))
        blockingPool.start()
        shutdown.add { try? blockingPool.syncShutdownGracefully() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        shutdown.add { try? group.syncShutdownGracefully() }
        let purger = PurgeScheduler(vault: vault)
        shutdown.add { purger.stop() }

        let (identity, httpsListener) = try https.map { try httpsSetup($0, token: token, vault: vault) } ?? (nil, nil)
        let listenerNames = ["unix:\(socketPath)"] + (https.map { ["https://\($0.host):\($0.port)"] } ?? [])
            + (metricsListener.map { ["http://\($0.host):\($0.port) (metrics)"] } ?? [])
        var operational = Router()
        HealthRoute.add(to: &operational, token: token, version: version, started: Date(), listeners: listenerNames, checks: [
            ReadinessCheck("token") { token.readinessProblem() },
            ReadinessCheck("metadata_store") { vault.storeProblem() },
            ReadinessCheck("audit_log") { auditLog.writabilityProblem() },
        ])
        MetricsRoute.add(to: &operational, vault: vault, access: accessControl) { [metrics] in metrics.emitToBuffer() }
        var router = operational
        VaultAPI(vault: vault, access: accessControl, identity: identity, authority: authority, logger: logger).register(in: &router)
        let auditor = AuditLogRecorder(log: auditLog, access: accessControl)
        let apiListener: HTTPServer.Listener = activatedSocket.map { .inheritedUnixSocket(descriptor: $0) }
            ?? .unixSocket(path: socketPath, group: socketGroup)
        var listeners: [(HTTPServer.Listener, Router)] = [(apiListener, router)]
        if let httpsListener { listeners.append((httpsListener, router)) }
        if let metricsListener { listeners.append((.loopback(host: metricsListener.host, port: metricsListener.port), operational)) }
        let admission = Admission(maximumConnections: limits.maximumConnections, maximumPendingRequests: limits.maximumPendingRequests)
        var servers: [HTTPServer] = []
        // Servers drain before the pools and the group go: registered last, they stop first.
        shutdown.add { servers.forEach { $0.shutdown() }; servers.removeAll() }
        for (listener, routes) in listeners {
            var configuration = HTTPServer.Configuration(listener: listener)
            configuration.maximumBodySize = limits.maximumBodySize
            configuration.maximumHeaderSize = limits.maximumHeaderSize
            configuration.clientTimeout = .seconds(Int64(limits.clientTimeoutSeconds))
            configuration.admission = admission
            servers.append(try HTTPServer(
                configuration: configuration, router: routes, group: group, blockingPool: blockingPool, auditor: auditor, logger: logger))
        }
        logger.info("ready", metadata: [
            "socket": "\(socketPath)\(activatedSocket == nil ? "" : " (from systemd)")", "https": "\(https.map { "\($0.host):\($0.port)" } ?? "off")",
            "metrics_port": "\(metricsListener.map { "\($0.host):\($0.port)" } ?? "off")",
            "state_dir": "\(directory.root.path)", "token": "\(token.tokenInfo.label)",
            "serial": "\(token.tokenInfo.serialNumber)", "key_versions": "\(token.keyCount)", "pid": "\(getpid())",
            "version": "\(version)", "admins": "\(access.initialAdministrators.joined(separator: ","))",
            "audit_log": "\(auditLog.currentFile.path)",
        ])

        Systemd.notify("READY=1\nSTATUS=serving on \(socketPath)\nMAINPID=\(getpid())")

        let signal = stop.wait()
        Systemd.notify("STOPPING=1")
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        shutdown.run()
        logger.info("stopped")
    }

    /// The CA and certificate, bearer tokens and OAuth2 clients behind the HTTPS listener.
    private func httpsSetup(
        _ options: HTTPSOptions, token: VaultToken, vault: KeyVault
    ) throws -> (IdentityServices, HTTPServer.Listener) {
        let tls = try TLSIdentity.load(directory: directory.tlsDirectory, extraNames: options.extraNames)
        let audiences = options.authorities(["localhost", "127.0.0.1", "::1"] + options.extraNames)
        let tokens = try BearerTokens(token: token, issuer: "\(audiences[0])/\(options.tenant)/v2.0", audiences: audiences)
        let identity = IdentityServices(
            tokens: tokens, clients: try ClientRegistry(vault: vault), tenant: options.tenant, caCertificatePEM: tls.caCertificatePEM)
        let listener = HTTPServer.Listener.https(
            host: options.host, port: options.port, tls: try tls.makeContext(),
            authentication: BearerAuthentication(tokens: tokens, tenant: options.tenant))
        return (identity, listener)
    }
}

/// Steps that undo start-up, run once in reverse order: at shutdown, or when start-up fails halfway.
final class ShutdownSequence {
    private var steps: [() -> Void] = []

    func add(_ step: @escaping () -> Void) {
        steps.append(step)
    }

    func run() {
        while let step = steps.popLast() { step() }
    }
}

/// Purges deleted keys whose retention has ended, once a minute and once at start.
final class PurgeScheduler {
    private let timer: any DispatchSourceTimer

    init(vault: KeyVault, interval: DispatchTimeInterval = .seconds(60)) {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "hsmd.purge"))
        timer.schedule(deadline: .now(), repeating: interval)
        timer.setEventHandler { vault.purgeExpiredKeys() }
        timer.resume()
        self.timer = timer
    }

    func stop() {
        timer.cancel()
    }
}

/// Blocks until one of the signals arrives; the signals' default actions are turned off so that
/// the daemon can shut down in order.
final class SignalWaiter: @unchecked Sendable {
    // Set once in init and only resumed there; the sources must live as long as the waiter.
    private let sources: [any DispatchSourceSignal]
    private let received = DispatchSemaphore(value: 0)
    private let queue = DispatchQueue(label: "hsmd.signals")
    private let caught = Mutex<Int32>(0)

    init(signals: [Int32]) {
        var sources: [any DispatchSourceSignal] = []
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            sources.append(source)
        }
        self.sources = sources
        for (source, number) in zip(sources, signals) {
            source.setEventHandler { [self] in
                caught.withLock { $0 = number }
                received.signal()
            }
            source.resume()
        }
    }

    /// The signal that arrived.
    func wait() -> Int32 {
        received.wait()
        return caught.withLock { $0 }
    }
}
