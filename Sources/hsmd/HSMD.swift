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

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Directory holding the token, its config and PINs, and the socket.", valueName: "DIR"))
    var stateDirectory: String

    @Option(help: ArgumentHelp("Unix socket to serve on (default: DIR/hsmd.sock). Created with mode 0600.", valueName: "PATH"))
    var socket: String?

    @Option(help: ArgumentHelp("PKCS#11 module to load.", valueName: "PATH"))
    var module = TokenProvisioner.Options().modulePath

    @Option(help: ArgumentHelp("Label of the token hsmd provisions (first start only).", valueName: "LABEL"))
    var tokenLabel = TokenProvisioner.Options().tokenLabel

    @Option(help: ArgumentHelp("File holding the user PIN (mode 0600). Default: the PIN hsmd generated into DIR/pins.", valueName: "PATH"))
    var userPINFile: String?

    @Option(help: ArgumentHelp("Environment variable holding the user PIN.", valueName: "NAME"))
    var userPINEnv: String?

    @Option(help: ArgumentHelp("File holding the SO PIN, used only when provisioning.", valueName: "PATH"))
    var soPINFile: String?

    @Option(help: ArgumentHelp("Environment variable holding the SO PIN, used only when provisioning.", valueName: "NAME"))
    var soPINEnv: String?

    @Option(name: .customLong("admin"), help: ArgumentHelp(
        "An initial administrator (uid:N, gid:N or a --principal name), holding Administrator, Crypto Officer and Crypto User at /. Repeatable. Default: hsmd's own uid and root.",
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

    @Option(help: ArgumentHelp("Address the HTTPS listener binds to.", valueName: "ADDRESS"))
    var tlsHost = "127.0.0.1"

    @Option(help: ArgumentHelp("Another name the HTTPS certificate covers, besides localhost, 127.0.0.1 and ::1. Repeatable.", valueName: "NAME"))
    var tlsName: [String] = []

    @Option(help: ArgumentHelp("The tenant id the HTTPS bearer challenge names; SDK credentials must use the same.", valueName: "ID"))
    var tenant = "00000000-0000-4000-8000-000000000001"

    @Option(help: ArgumentHelp("Size at which the audit log rotates to a new file, in bytes.", valueName: "BYTES"))
    var auditRotateBytes = 64 << 20

    @Option(help: ArgumentHelp("Base URL that kids, recovery ids and next links are written on.", valueName: "URL"))
    var authority = "https://localhost"

    @Option(help: ArgumentHelp("Days a deleted key stays recoverable, 7 to 90 (fixed at the first start).", valueName: "DAYS"))
    var retentionDays: Int?

    @Flag(help: "Refuse purges of deleted keys until their retention ends (fixed at the first start).")
    var purgeProtection = false

    @Option(help: ArgumentHelp("Largest request body accepted, in bytes; larger ones get 413.", valueName: "BYTES"))
    var maxBodyBytes = 1 << 20

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "LEVEL"))
    var logLevel = "info"

    func validate() throws {
        if userPINFile != nil && userPINEnv != nil {
            throw ValidationError("name the user PIN once: --user-pin-file or --user-pin-env, not both")
        }
        if soPINFile != nil && soPINEnv != nil {
            throw ValidationError("name the SO PIN once: --so-pin-file or --so-pin-env, not both")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if let retentionDays, !(7...90).contains(retentionDays) {
            throw ValidationError("--retention-days must be 7 to 90")
        }
        if !(authority.hasPrefix("https://") || authority.hasPrefix("http://")) {
            throw ValidationError("--authority must be a URL such as https://localhost")
        }
        for binding in principals where PrincipalBinding(binding) == nil {
            throw ValidationError("--principal \(binding): expected NAME=uid:N or NAME=gid:N")
        }
        if socketGroup != nil && socket == nil {
            throw ValidationError("--socket-group needs --socket PATH in a directory the group can traverse (the state directory is private)")
        }
        if let tlsPort, !(1...65535).contains(tlsPort) {
            throw ValidationError("--tls-port must be 1 to 65535")
        }
        if !tenant.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) || tenant.isEmpty {
            throw ValidationError("--tenant must be letters, digits, '-' and '.' (a GUID is safest with azure-identity)")
        }
        if maxBodyBytes < 1024 {
            throw ValidationError("--max-body-bytes must be at least 1024")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory.hsmd(registry: metrics))
        var options = TokenProvisioner.Options()
        options.modulePath = module
        options.tokenLabel = tokenLabel
        options.userPIN = userPINFile.map(PINSource.file) ?? userPINEnv.map(PINSource.environment)
        options.soPIN = soPINFile.map(PINSource.file) ?? soPINEnv.map(PINSource.environment)
        let directory = StateDirectory(path: stateDirectory)
        let settings = (retentionDays != nil || purgeProtection)
            ? VaultSettings(retentionDays: retentionDays ?? 90, purgeProtection: purgeProtection) : nil
        var socketGroupID: gid_t?
        if let socketGroup {
            guard let group = getgrnam(socketGroup) ?? UInt32(socketGroup).flatMap({ getgrgid($0) }) else {
                throw ValidationError("--socket-group \(socketGroup): no such group")
            }
            socketGroupID = group.pointee.gr_gid
        }
        let access = AccessOptions(
            initialAdministrators: admins.isEmpty ? (getuid() == 0 ? ["uid:0"] : ["uid:\(getuid())", "uid:0"]) : admins,
            bindings: principals.compactMap(PrincipalBinding.init))
        let daemon = Daemon(
            directory: directory, provisioning: options, vaultSettings: settings, access: access,
            https: tlsPort.map { HTTPSOptions(host: tlsHost, port: $0, extraNames: tlsName, tenant: tenant) },
            socketGroup: socketGroupID, auditRotationSize: auditRotateBytes, authority: authority,
            socketPath: socket ?? directory.defaultSocket.path, maximumBodySize: maxBodyBytes, version: Self.version,
            metrics: metrics, logger: Logger(label: "hsmd"))
        do {
            try daemon.run()
        } catch {
            Logger(label: "hsmd").critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}
