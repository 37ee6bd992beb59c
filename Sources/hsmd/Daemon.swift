import Foundation
import Synchronization
import Logging
import NIOCore
import NIOPosix
import Audit
import Vault
import VaultServer

/// Who starts with rights, and the operator's names for callers.
struct AccessOptions {
    let initialAdministrators: [String]
    let bindings: [PrincipalBinding]
}

/// The daemon's life: open the token, serve, and on SIGTERM or SIGINT drain and close in order.
struct Daemon {
    let directory: StateDirectory
    let provisioning: TokenProvisioner.Options
    let vaultSettings: VaultSettings?
    let access: AccessOptions
    let socketGroup: gid_t?
    let auditRotationSize: Int
    let authority: String
    let socketPath: String
    let maximumBodySize: Int
    let version: String
    let logger: Logger

    func run() throws {
        // Everything hsmd creates (socket, PIN files, token files) is for its own user only.
        umask(0o077)
        var noCoreDumps = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCoreDumps)
        let stop = SignalWaiter(signals: [SIGTERM, SIGINT])

        let (token, lock) = try TokenProvisioner(directory: directory, options: provisioning, logger: logger).open()
        let vault: KeyVault
        do {
            vault = try KeyVault(token: token, storePath: directory.metadataStore, settings: vaultSettings, logger: logger)
        } catch {
            token.close()
            throw error
        }
        let accessControl: AccessControl
        let auditLog: AuditLog
        do {
            accessControl = try AccessControl(
                vault: vault, initialAdministrators: access.initialAdministrators, bindings: access.bindings)
            auditLog = try AuditLog(directory: directory.auditDirectory, rotationSize: auditRotationSize)
        } catch {
            token.close()
            throw error
        }
        let purger = PurgeScheduler(vault: vault)
        let blockingPool = NIOThreadPool(numberOfThreads: max(2, ProcessInfo.processInfo.activeProcessorCount * 2))
        blockingPool.start()
        var router = Router()
        HealthRoute.add(to: &router, token: token, version: version, started: Date())
        VaultAPI(vault: vault, access: accessControl, authority: authority, logger: logger).register(in: &router)
        var configuration = HTTPServer.Configuration(socketPath: socketPath)
        configuration.maximumBodySize = maximumBodySize
        configuration.socketGroup = socketGroup
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        var server: HTTPServer?
        do {
            server = try HTTPServer(
                configuration: configuration, router: router, group: group, blockingPool: blockingPool,
                auditor: AuditLogRecorder(log: auditLog, access: accessControl), logger: logger)
        } catch {
            try? group.syncShutdownGracefully()
            try? blockingPool.syncShutdownGracefully()
            auditLog.close()
            token.close()
            throw error
        }
        logger.info("ready", metadata: [
            "socket": "\(socketPath)", "state_dir": "\(directory.root.path)", "token": "\(token.tokenInfo.label)",
            "serial": "\(token.tokenInfo.serialNumber)", "key_versions": "\(token.keyCount)", "pid": "\(getpid())",
            "version": "\(version)", "admins": "\(access.initialAdministrators.joined(separator: ","))",
            "audit_log": "\(auditLog.currentFile.path)",
        ])

        let signal = stop.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        purger.stop()
        server?.shutdown()
        server = nil
        try? group.syncShutdownGracefully()
        try? blockingPool.syncShutdownGracefully()
        auditLog.close()
        token.close()
        withExtendedLifetime(lock) {}
        logger.info("stopped")
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
