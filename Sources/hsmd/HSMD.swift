import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import Vault
import VaultServer

@main
struct HSMD: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "hsmd",
        abstract: "An HSM daemon: Azure Managed HSM's keys API over a Unix socket, on a real PKCS#11 token.",
        discussion: """
            On first start with an empty state directory, hsmd provisions a SoftHSM2 token there: it writes \
            the SoftHSM2 config, initialises the token, creates the domain key used for backups, and \
            generates the SO and user PINs into DIR/pins (mode 0600) unless you name your own. Later starts \
            reuse that token. One hsmd owns a state directory at a time.

            PINs never come from the command line (every user can read it in /proc): name a file \
            (mode 0600) or an environment variable instead.

            Examples:
              hsmd --state-dir tokens/dev
              hsmd --state-dir /var/lib/hsmd --socket /run/hsmd/hsmd.sock --user-pin-file /etc/hsmd/user.pin
              HSMD_PIN=... hsmd --state-dir /var/lib/hsmd --user-pin-env HSMD_PIN

            Stop it with SIGTERM or Ctrl-C: it finishes the requests in flight, logs out of the token \
            and removes its socket.
            """,
        version: version)

    @Option(help: ArgumentHelp("Configuration file (YAML) with any of the settings below, by their long names. Also $HSMD_CONFIG.", valueName: "PATH"))
    var config: String?

    @Flag(help: "Check the settings from every source, print the result and exit: 0 if valid, 64 if not. Starts nothing.")
    var checkConfig = false

    @Flag(help: ArgumentHelp(
        "Check the state directory (token, metadata store, audit chain) as a start would, report, and exit: 0 when sound, 1 when not. hsmd must be stopped."))
    var checkState = false

    @Flag(help: "With --check-state: make the repairs a start would make (finish or undo operations a crash interrupted), then report.")
    var repair = false

    @Flag(help: ArgumentHelp(
        "Rebuild a lost or empty metadata store from the token (with --check-state --repair, or on a start): names, versions, types and usage come back; attributes, tags, rotation policies and deletion state do not."))
    var rebuildMetadata = false

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Directory holding the token, its config and PINs, and the socket. Required.", valueName: "DIR"))
    var stateDirectory: String?

    @Option(help: ArgumentHelp("Unix socket to serve on (default: DIR/hsmd.sock). Created with mode 0600.", valueName: "PATH"))
    var socket: String?

    @Option(help: ArgumentHelp("PKCS#11 module to load (default: \(TokenProvisioner.Options().modulePath)).", valueName: "PATH"))
    var module: String?

    @Option(help: ArgumentHelp("Label of the token hsmd provisions, first start only (default: \(TokenProvisioner.Options().tokenLabel)).", valueName: "LABEL"))
    var tokenLabel: String?

    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "First start only: use the token labelled --token-label that the module already has (SoftHSM2: the one $SOFTHSM2_CONF names) instead of provisioning one. Needs its user PIN; with its SO PIN hsmd adds a domain key for backups."))
    var existingToken: Bool?

    @Option(help: ArgumentHelp("File holding the user PIN (mode 0600). Default: the PIN hsmd generated into DIR/pins.", valueName: "PATH"))
    var userPINFile: String?

    @Option(help: ArgumentHelp("Environment variable holding the user PIN.", valueName: "NAME"))
    var userPINEnv: String?

    @Option(help: ArgumentHelp("File holding the SO PIN, used only when provisioning.", valueName: "PATH"))
    var soPINFile: String?

    @Option(help: ArgumentHelp("Environment variable holding the SO PIN, used only when provisioning.", valueName: "NAME"))
    var soPINEnv: String?

    @Option(name: .customLong("admin"), help: ArgumentHelp(
        "An initial administrator (uid:N, gid:N or a --principal name), holding Administrator, Crypto Officer, Crypto User and Monitoring Reader at /. Repeatable. Default: hsmd's own uid and root.",
        valueName: "PRINCIPAL"))
    var admins: [String] = []

    @Option(name: .customLong("principal"), help: ArgumentHelp(
        "Names a caller for role assignments and the audit log: NAME=uid:N or NAME=gid:N. Repeatable.", valueName: "BINDING"))
    var principals: [String] = []

    @Option(help: ArgumentHelp(
        "Lets this group connect to the socket (mode 0660). The socket must then be outside the state directory (--socket).",
        valueName: "GROUP"))
    var socketGroup: String?

    @Option(help: ArgumentHelp(
        "Also serve the API over HTTPS on this TCP port (for Azure's SDKs), with a certificate from hsmd's own CA (hsmctl tls ca).",
        valueName: "PORT"))
    var tlsPort: Int?

    @Option(help: ArgumentHelp("Address the HTTPS listener binds to (default: 127.0.0.1).", valueName: "ADDRESS"))
    var tlsHost: String?

    @Option(help: ArgumentHelp("Another name the HTTPS certificate covers, besides localhost, 127.0.0.1 and ::1. Repeatable.", valueName: "NAME"))
    var tlsName: [String] = []

    @Option(help: ArgumentHelp("The tenant id the HTTPS bearer challenge names; SDK credentials must use the same.", valueName: "ID"))
    var tenant: String?

    @Option(help: ArgumentHelp("Size at which the audit log rotates to a new file, in bytes (default: 64 MiB).", valueName: "BYTES"))
    var auditRotateBytes: Int?

    @Option(help: ArgumentHelp(
        "When an audited request is answered: fsync (default), once its audit line is on disk; write, once the line is in the file and before its fsync, which survives a crash of hsmd but not of the machine (docs/security.md).",
        valueName: "WHEN"))
    var auditDurability: String?

    @Option(help: ArgumentHelp("Base URL that kids, recovery ids and next links are written on (default: https://localhost).", valueName: "URL"))
    var authority: String?

    @Option(help: ArgumentHelp("Days a deleted key stays recoverable, 7 to 90 (default 90; fixed at the first start).", valueName: "DAYS"))
    var retentionDays: Int?

    @Flag(inversion: .prefixedNo, help: "Refuse purges of deleted keys until their retention ends (fixed at the first start; default off).")
    var purgeProtection: Bool?

    @Option(help: ArgumentHelp("Largest request body accepted, in bytes; larger ones get 413 (default: 1 MiB).", valueName: "BYTES"))
    var maxBodyBytes: Int?

    @Option(help: ArgumentHelp("trace, debug, info (default), notice, warning, error or critical.", valueName: "LEVEL"))
    var logLevel: String?

    @Option(help: ArgumentHelp("Log lines as json (default) or logfmt, on stderr.", valueName: "FORMAT"))
    var logFormat: String?

    @Option(help: ArgumentHelp(
        "Also serve GET /metrics on this loopback TCP port, for a Prometheus that cannot reach the socket. Callers need the Monitoring Reader role for their uid.",
        valueName: "PORT"))
    var metricsPort: Int?

    @Option(help: ArgumentHelp("Loopback address of the metrics port (default: 127.0.0.1).", valueName: "ADDRESS"))
    var metricsHost: String?

    @Option(help: ArgumentHelp("Largest request head (request line and headers), in bytes; larger ones get 431 (default: 32 KiB).", valueName: "BYTES"))
    var maxHeaderBytes: Int?

    @Option(help: ArgumentHelp("Connections open at once, over all listeners; more are answered 503 and closed (default: 512).", valueName: "N"))
    var maxConnections: Int?

    @Option(help: ArgumentHelp("Requests waiting for or running on the worker pool; more are answered 503 with Retry-After (default: 256).", valueName: "N"))
    var maxPendingRequests: Int?

    @Option(help: ArgumentHelp(
        "Key versions kept as in-memory copies inside the token library once used, for speed: SoftHSM2 re-reads a token object's file on every use (default: 1024; 0: none).",
        valueName: "N"))
    var sessionKeyCopies: Int?

    @Option(help: ArgumentHelp(
        "Time a client has to send its next request in full; then 408 mid-request, or the idle connection closes (default: 60).",
        valueName: "SECONDS"))
    var clientTimeoutSeconds: Int?

    /// What the command line set, in the shape the other sources have.
    private var flagSettings: [String: RawSetting] {
        var settings: [String: RawSetting] = [:]
        func put(_ name: String, _ value: (any CustomStringConvertible)?) {
            if let value { settings[name] = RawSetting(value: .scalar(value.description), origin: "--\(name)") }
        }
        func put(_ name: String, _ values: [String]) {
            if !values.isEmpty { settings[name] = RawSetting(value: .list(values), origin: "--\(name)") }
        }
        put("state-dir", stateDirectory); put("socket", socket); put("module", module); put("token-label", tokenLabel)
        put("user-pin-file", userPINFile); put("user-pin-env", userPINEnv); put("so-pin-file", soPINFile); put("so-pin-env", soPINEnv)
        put("admin", admins); put("principal", principals); put("socket-group", socketGroup)
        put("tls-port", tlsPort); put("tls-host", tlsHost); put("tls-name", tlsName); put("tenant", tenant)
        put("audit-rotate-bytes", auditRotateBytes); put("audit-durability", auditDurability)
        put("authority", authority); put("retention-days", retentionDays)
        put("purge-protection", purgeProtection); put("max-body-bytes", maxBodyBytes); put("log-level", logLevel)
        put("log-format", logFormat); put("metrics-port", metricsPort); put("metrics-host", metricsHost)
        put("max-header-bytes", maxHeaderBytes); put("max-connections", maxConnections)
        put("max-pending-requests", maxPendingRequests); put("client-timeout-seconds", clientTimeoutSeconds)
        put("existing-token", existingToken); put("session-key-copies", sessionKeyCopies)
        return settings
    }

    /// Flags, then the environment, then the file, then the defaults.
    func resolvedSettings() throws -> Settings {
        let environment = ProcessInfo.processInfo.environment
        let file = try (config ?? environment["HSMD_CONFIG"]).map { try ConfigurationFile.read($0, known: Settings.kinds) } ?? [:]
        return try Settings(sources: [flagSettings, EnvironmentSettings.read(environment, known: Settings.kinds), file])
    }

    func validate() throws {
        if repair && !checkState { throw ValidationError("--repair goes with --check-state") }
        do {
            _ = try resolvedSettings()
        } catch let error as InvalidConfiguration {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        let settings = try resolvedSettings()
        if checkConfig {
            print(settings.summary)
            return
        }
        LoggingSystem.bootstrap { label in
            var handler = StructuredLogHandler(label: label, format: settings.logFormat)
            handler.logLevel = settings.logLevel
            return handler
        }
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory.hsmd(registry: metrics))
        var options = TokenProvisioner.Options()
        options.modulePath = settings.module
        options.tokenLabel = settings.tokenLabel
        options.existingToken = settings.existingToken
        options.sessionKeyCopies = settings.sessionKeyCopies
        options.userPIN = settings.userPINFile.map(PINSource.file) ?? settings.userPINEnv.map(PINSource.environment)
        options.soPIN = settings.soPINFile.map(PINSource.file) ?? settings.soPINEnv.map(PINSource.environment)
        let directory = StateDirectory(path: settings.stateDirectory)
        let vaultSettings = (settings.retentionDays != nil || settings.purgeProtection)
            ? VaultSettings(retentionDays: settings.retentionDays ?? 90, purgeProtection: settings.purgeProtection) : nil
        var socketGroupID: gid_t?
        if let socketGroup = settings.socketGroup {
            guard let group = getgrnam(socketGroup) ?? UInt32(socketGroup).flatMap({ getgrgid($0) }) else {
                throw ValidationError("socket-group \(socketGroup): no such group")
            }
            socketGroupID = group.pointee.gr_gid
        }
        let admins = settings.admins
        let activated = try Systemd.activatedSocket()
        let access = AccessOptions(
            initialAdministrators: admins.isEmpty ? (getuid() == 0 ? ["uid:0"] : ["uid:\(getuid())", "uid:0"]) : admins,
            bindings: settings.principals.compactMap(PrincipalBinding.init))
        if checkState {
            let check = StateCheck(
                directory: directory, provisioning: options, repair: repair, rebuildMetadata: rebuildMetadata,
                logger: Logger(label: "hsmd"))
            throw ExitCode(check.run())
        }
        let daemon = Daemon(
            directory: directory, provisioning: options, vaultSettings: vaultSettings, rebuildMetadata: rebuildMetadata, access: access,
            https: settings.tlsPort.map { HTTPSOptions(host: settings.tlsHost, port: $0, extraNames: settings.tlsNames, tenant: settings.tenant) },
            socketGroup: socketGroupID, auditRotationSize: settings.auditRotateBytes, auditDurability: settings.auditDurability, authority: settings.authority,
            socketPath: activated?.path ?? settings.socket ?? directory.defaultSocket.path, activatedSocket: activated?.descriptor,
            limits: ServerLimits(
                maximumBodySize: settings.maxBodyBytes, maximumHeaderSize: settings.maxHeaderBytes,
                maximumConnections: settings.maxConnections, maximumPendingRequests: settings.maxPendingRequests,
                clientTimeoutSeconds: settings.clientTimeoutSeconds),
            metricsListener: settings.metricsPort.map { (settings.metricsHost, $0) },
            version: Self.version, metrics: metrics, logger: Logger(label: "hsmd"))
        do {
            try daemon.run()
        } catch {
            Logger(label: "hsmd").critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}
