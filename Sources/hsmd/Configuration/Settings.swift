import Foundation
import Audit
import Logging
import Vault

/// Everything that decides how hsmd runs, after the sources had their say in the documented order:
/// flags, then the environment, then the configuration file, then the defaults.
struct Settings {
    static let kinds: [String: SettingKind] = [
        "state-dir": .string, "socket": .string, "module": .string, "token-label": .string,
        "user-pin-file": .string, "user-pin-env": .string, "so-pin-file": .string, "so-pin-env": .string,
        "admin": .list, "principal": .list, "socket-group": .string,
        "tls-port": .integer, "tls-host": .string, "tls-name": .list, "tenant": .string,
        "audit-rotate-bytes": .integer, "audit-durability": .string, "authority": .string, "retention-days": .integer, "purge-protection": .boolean,
        "max-body-bytes": .integer, "log-level": .string, "log-format": .string,
        "metrics-port": .integer, "metrics-host": .string,
        "max-header-bytes": .integer, "max-connections": .integer, "max-pending-requests": .integer,
        "client-timeout-seconds": .integer, "existing-token": .boolean, "session-key-copies": .integer,
    ]

    var stateDirectory: String
    var socket: String?
    var module = TokenProvisioner.Options().modulePath
    var tokenLabel = TokenProvisioner.Options().tokenLabel
    var userPINFile: String?
    var userPINEnv: String?
    var soPINFile: String?
    var soPINEnv: String?
    var admins: [String] = []
    var principals: [String] = []
    var socketGroup: String?
    var tlsPort: Int?
    var tlsHost = "127.0.0.1"
    var tlsNames: [String] = []
    var tenant = "00000000-0000-4000-8000-000000000001"
    var auditRotateBytes = 64 << 20
    var auditDurability = AuditDurability.fsync
    var authority = "https://localhost"
    var retentionDays: Int?
    var purgeProtection = false
    var maxBodyBytes = 1 << 20
    var logLevel = Logger.Level.info
    var logFormat = LogFormat.json
    var metricsPort: Int?
    var metricsHost = "127.0.0.1"
    var maxHeaderBytes = 32 << 10
    var maxConnections = 512
    var maxPendingRequests = 256
    var clientTimeoutSeconds = 60
    var existingToken = false
    var sessionKeyCopies = VaultToken.defaultSessionCopies
    /// Where each setting that is not a default came from.
    private(set) var origins: [String: String] = [:]

    enum LogFormat: String, CaseIterable {
        case json, logfmt
    }

    /// Merges the sources (earlier wins) and checks every value.
    init(sources: [[String: RawSetting]]) throws {
        var merged: [String: RawSetting] = [:]
        for source in sources.reversed() { merged.merge(source) { _, newer in newer } }
        let values = SettingValues(merged)
        origins = merged.mapValues(\.origin)
        guard let stateDirectory = try values.string("state-dir") else {
            throw InvalidConfiguration(description: "state-dir is required: --state-dir DIR, HSMD_STATE_DIR or 'state-dir:' in the configuration file")
        }
        self.stateDirectory = stateDirectory
        socket = try values.string("socket")
        module = try values.string("module") ?? module
        tokenLabel = try values.string("token-label") ?? tokenLabel
        userPINFile = try values.string("user-pin-file")
        userPINEnv = try values.string("user-pin-env")
        soPINFile = try values.string("so-pin-file")
        soPINEnv = try values.string("so-pin-env")
        admins = try values.list("admin") ?? []
        principals = try values.list("principal") ?? []
        socketGroup = try values.string("socket-group")
        tlsPort = try values.integer("tls-port", in: 1...65535)
        tlsHost = try values.string("tls-host") ?? tlsHost
        tlsNames = try values.list("tls-name") ?? []
        tenant = try values.string("tenant") ?? tenant
        auditRotateBytes = try values.integer("audit-rotate-bytes", in: 4096...Int.max) ?? auditRotateBytes
        auditDurability = try values.choice("audit-durability", AuditDurability.allCases) ?? auditDurability
        authority = try values.string("authority") ?? authority
        retentionDays = try values.integer("retention-days", in: 7...90)
        purgeProtection = try values.boolean("purge-protection") ?? purgeProtection
        maxBodyBytes = try values.integer("max-body-bytes", in: 1024...(256 << 20)) ?? maxBodyBytes
        logLevel = try values.choice("log-level", Logger.Level.allCases) ?? logLevel
        logFormat = try values.choice("log-format", LogFormat.allCases) ?? logFormat
        metricsPort = try values.integer("metrics-port", in: 1...65535)
        metricsHost = try values.string("metrics-host") ?? metricsHost
        maxHeaderBytes = try values.integer("max-header-bytes", in: 1024...(1 << 20)) ?? maxHeaderBytes
        maxConnections = try values.integer("max-connections", in: 1...100_000) ?? maxConnections
        maxPendingRequests = try values.integer("max-pending-requests", in: 1...100_000) ?? maxPendingRequests
        clientTimeoutSeconds = try values.integer("client-timeout-seconds", in: 1...3600) ?? clientTimeoutSeconds
        existingToken = try values.boolean("existing-token") ?? existingToken
        sessionKeyCopies = try values.integer("session-key-copies", in: 0...1_000_000) ?? sessionKeyCopies
        try checkCombinations(values)
    }

    /// The effective settings as a configuration file would hold them, each with its source.
    var summary: String {
        let values: [(String, String?)] = [
            ("state-dir", stateDirectory), ("socket", socket ?? "\(stateDirectory)/hsmd.sock"), ("module", module),
            ("token-label", tokenLabel), ("user-pin-file", userPINFile), ("user-pin-env", userPINEnv),
            ("so-pin-file", soPINFile), ("so-pin-env", soPINEnv), ("admin", admins.isEmpty ? nil : "[\(admins.joined(separator: ", "))]"),
            ("principal", principals.isEmpty ? nil : "[\(principals.joined(separator: ", "))]"), ("socket-group", socketGroup),
            ("tls-port", tlsPort.map(String.init)), ("tls-host", tlsHost),
            ("tls-name", tlsNames.isEmpty ? nil : "[\(tlsNames.joined(separator: ", "))]"), ("tenant", tenant),
            ("audit-rotate-bytes", "\(auditRotateBytes)"), ("audit-durability", auditDurability.rawValue),
            ("authority", authority),
            ("retention-days", retentionDays.map(String.init)), ("purge-protection", "\(purgeProtection)"),
            ("max-body-bytes", "\(maxBodyBytes)"), ("log-level", logLevel.rawValue), ("log-format", logFormat.rawValue),
            ("metrics-port", metricsPort.map(String.init)), ("metrics-host", metricsHost),
            ("max-header-bytes", "\(maxHeaderBytes)"), ("max-connections", "\(maxConnections)"),
            ("max-pending-requests", "\(maxPendingRequests)"), ("client-timeout-seconds", "\(clientTimeoutSeconds)"),
            ("existing-token", "\(existingToken)"), ("session-key-copies", "\(sessionKeyCopies)"),
        ]
        let lines = values.map { name, value in
            let setting = "\(name): \(value ?? "~")"
            return setting + String(repeating: " ", count: max(1, 45 - setting.count)) + "# \(origins[name] ?? "default")"
        }
        return (["# hsmd: configuration is valid"] + lines).joined(separator: "\n")
    }

    private func checkCombinations(_ values: SettingValues) throws {
        func fail(_ message: String) -> InvalidConfiguration { InvalidConfiguration(description: message) }
        if userPINFile != nil && userPINEnv != nil {
            throw fail("name the user PIN once: \(values.origin("user-pin-file")) or \(values.origin("user-pin-env")), not both")
        }
        if soPINFile != nil && soPINEnv != nil {
            throw fail("name the SO PIN once: \(values.origin("so-pin-file")) or \(values.origin("so-pin-env")), not both")
        }
        if !(authority.hasPrefix("https://") || authority.hasPrefix("http://")) {
            throw fail("authority (\(values.origin("authority"))) must be a URL such as https://localhost")
        }
        for binding in principals where PrincipalBinding(binding) == nil {
            throw fail("principal \(binding) (\(values.origin("principal"))): expected NAME=uid:N or NAME=gid:N")
        }
        if existingToken && userPINFile == nil && userPINEnv == nil {
            throw fail("existing-token needs the token's user PIN: user-pin-file or user-pin-env")
        }
        if socketGroup != nil && socket == nil {
            throw fail("socket-group needs socket PATH in a directory the group can traverse (the state directory is private)")
        }
        if tenant.isEmpty || !tenant.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) {
            throw fail("tenant must be letters, digits, '-' and '.' (a GUID is safest with azure-identity)")
        }
        if metricsPort != nil && !["127.0.0.1", "::1", "localhost"].contains(metricsHost) {
            throw fail("metrics-host must be a loopback address (127.0.0.1, ::1 or localhost): the metrics port identifies callers by their local socket's owner")
        }
    }
}

/// Typed reads of the merged settings, with errors that name the value's source.
struct SettingValues {
    private let settings: [String: RawSetting]

    init(_ settings: [String: RawSetting]) {
        self.settings = settings
    }

    func origin(_ name: String) -> String { settings[name]?.origin ?? "default" }

    func string(_ name: String) throws -> String? {
        guard let setting = settings[name] else { return nil }
        guard case .scalar(let text) = setting.value else { throw invalid(name, setting, "must be a single value") }
        guard !text.isEmpty else { throw invalid(name, setting, "must not be empty") }
        return text
    }

    func list(_ name: String) throws -> [String]? {
        guard let setting = settings[name] else { return nil }
        switch setting.value {
        case .list(let items): return items.filter { !$0.isEmpty }
        case .scalar(let text): return [text]
        }
    }

    func integer(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = try string(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            let bounds = range.upperBound == Int.max ? "at least \(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
            throw invalid(name, settings[name]!, "must be an integer, \(bounds); it is '\(text)'")
        }
        return value
    }

    func boolean(_ name: String) throws -> Bool? {
        guard let text = try string(name) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw invalid(name, settings[name]!, "must be true or false; it is '\(text)'")
        }
    }

    func choice<Choice: RawRepresentable & CaseIterable>(_ name: String, _ choices: Choice.AllCases) throws -> Choice? where Choice.RawValue == String {
        guard let text = try string(name) else { return nil }
        guard let value = Choice(rawValue: text) else {
            throw invalid(name, settings[name]!, "must be one of \(choices.map(\.rawValue).joined(separator: ", ")); it is '\(text)'")
        }
        return value
    }

    private func invalid(_ name: String, _ setting: RawSetting, _ problem: String) -> InvalidConfiguration {
        InvalidConfiguration(description: "\(name) (\(setting.origin)) \(problem)")
    }
}
