import ArgumentParser
import Foundation

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon, its token, and the roles you hold (what you may do).",
        discussion: """
            Your roles are those assigned to your uid:N and gid:N; roles of a name bound with hsmd --principal \
            are not shown. Listing them needs a role that reads role assignments.

            Examples:
              hsmctl status
              hsmctl status --output json
            """)
    @OptionGroup var connection: ConnectionOptions

    private var principals: [String] { ["uid:\(getuid())", "gid:\(getgid())"] }

    func run() throws {
        let health = try connection.health()
        var json: [String: Any] = ["health": health, "principals": principals, "listeners": ["unix:" + connection.socket]]
        let roles: Result<[[String]], APIFailure>
        do throws(APIFailure) {
            let assignments = try roleAssignments()
            json["roleAssignments"] = assignments
            roles = .success(try roleRows(assignments))
        } catch {
            json["roleAssignmentsError"] = error.message
            roles = .failure(error)
        }
        connection.render(json) { show(health, roles) }
    }

    private func roleAssignments() throws(APIFailure) -> [[String: Any]] {
        var assignments: [[String: Any]] = []
        for principal in principals {
            let filter = "principalId eq '\(principal)'".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let list = try connection.request(.GET, "/providers/Microsoft.Authorization/roleAssignments", query: "$filter=\(filter)")
            assignments += list["value"] as? [[String: Any]] ?? []
        }
        return assignments
    }

    /// ROLE, SCOPE, AS (which of the caller's principals holds it), with role names for role GUIDs.
    private func roleRows(_ assignments: [[String: Any]]) throws(APIFailure) -> [[String]] {
        let definitions = try connection.request(.GET, "/providers/Microsoft.Authorization/roleDefinitions")["value"] as? [[String: Any]] ?? []
        let names = Dictionary(definitions.map { definition in
            (definition["name"] as? String ?? "", (definition["properties"] as? [String: Any])?["roleName"] as? String ?? "")
        }, uniquingKeysWith: { first, _ in first })
        return assignments.map { assignment in
            let properties = assignment["properties"] as? [String: Any] ?? [:]
            let roleID = (properties["roleDefinitionId"] as? String ?? "").split(separator: "/").last.map(String.init) ?? ""
            return [names[roleID] ?? roleID, properties["scope"] as? String ?? "", properties["principalId"] as? String ?? ""]
        }
    }

    private func show(_ health: [String: Any], _ roles: Result<[[String]], APIFailure>) {
        let token = health["token"] as? [String: Any] ?? [:]
        printFields([
            ("status", "\(health["status"] ?? "?")"), ("version", "hsmd \(health["version"] ?? "?")"),
            ("uptime", Self.duration(health["uptimeSeconds"] as? Int ?? 0)),
            ("token", "\(token["label"] ?? "?") (serial \(token["serialNumber"] ?? "?"))"),
            ("key versions", "\(token["keyVersions"] ?? "?")"), ("listener", "unix:" + connection.socket),
            ("you", principals.joined(separator: ", ")),
        ])
        print()
        switch roles {
        case .success(let rows) where rows.isEmpty:
            print("No roles are assigned to \(principals.joined(separator: " or ")) (roles of a name bound with --principal are not listed).")
        case .success(let rows):
            printTable(["ROLE", "SCOPE", "AS"], rows)
        case .failure(let failure):
            print("Your roles cannot be listed: \(failure.message)")
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
