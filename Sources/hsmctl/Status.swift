import ArgumentParser
import Foundation

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon, its token, its listeners, who you are to it and the roles you hold.",
        discussion: """
            Your roles are every assignment that reaches you: to your uid:N, your gid:N, or a name hsmd binds to
            either with --principal.

            Examples:
              hsmctl status
              hsmctl status --output json
            """)
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let health = try connection.health()
        let whoami = try connection.call(.GET, "/hsmd/whoami")
        let json: [String: Any] = ["health": health, "whoami": whoami, "listeners": health["listeners"] ?? []]
        connection.render(json) { show(health, whoami) }
    }

    private func show(_ health: [String: Any], _ whoami: [String: Any]) {
        let token = health["token"] as? [String: Any] ?? [:]
        let free = [("private", token["freePrivateMemory"]), ("public", token["freePublicMemory"])]
            .compactMap { name, value in (value as? Int).map { "\($0) bytes \(name)" } }
        let identities = (whoami["identities"] as? [String] ?? []).joined(separator: ", ")
        printFields([
            ("status", "\(health["status"] ?? "?")"), ("version", "hsmd \(health["version"] ?? "?")"),
            ("uptime", Self.duration(health["uptimeSeconds"] as? Int ?? 0)),
            ("token", "\(token["label"] ?? "?") (serial \(token["serialNumber"] ?? "?"), slot \(token["slot"] ?? "?"))"),
            ("free memory", free.isEmpty ? "no limit reported" : free.joined(separator: ", ")),
            ("key versions", "\(token["keyVersions"] ?? "?")"),
            ("listeners", (health["listeners"] as? [String] ?? []).joined(separator: ", ")),
            ("you", "\(whoami["principal"] ?? "?") (\(identities))"),
        ])
        print()
        let roles = (whoami["roles"] as? [[String: Any]] ?? []).map { role in
            [role["roleName"] as? String ?? "", role["scope"] as? String ?? "", role["principalId"] as? String ?? ""]
        }
        if roles.isEmpty {
            print("No roles are assigned to \(whoami["principal"] ?? "you"): hsmd refuses you everything but health.")
        } else {
            printTable(["ROLE", "SCOPE", "AS"], roles)
        }
    }

    /// Uptime as people say it: 42 s, 5 min 3 s, 3 h 12 min, 2 d 4 h.
    static func duration(_ seconds: Int) -> String {
        switch seconds {
        case ..<60: "\(seconds) s"
        case ..<3600: "\(seconds / 60) min \(seconds % 60) s"
        case ..<86400: "\(seconds / 3600) h \(seconds % 3600 / 60) min"
        default: "\(seconds / 86400) d \(seconds % 86400 / 3600) h"
        }
    }
}
