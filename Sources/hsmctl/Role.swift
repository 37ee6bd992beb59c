import ArgumentParser
import Foundation

struct Role: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage who may do what: role definitions and role assignments (local RBAC).",
        discussion: """
            Principals are uid:N, gid:N, or a name hsmd binds with --principal NAME=uid:N.
            Scopes are / (everything), /keys (every key) or /keys/NAME (one key).

            Examples:
              hsmctl role definitions
              hsmctl role assign --role "Managed HSM Crypto User" --principal uid:1001 \\
                  --scope /keys/payments
              hsmctl role list --scope /keys/payments
              hsmctl role remove --role "Managed HSM Crypto User" --principal uid:1001 \\
                  --scope /keys/payments
            """,
        subcommands: [Definitions.self, List.self, Assign.self, Remove.self])

    /// The path prefix of a scope's RBAC resources.
    static func path(scope: String, _ resource: String) throws -> String {
        let trimmed = scope.split(separator: "/").joined(separator: "/")
        guard trimmed.isEmpty || trimmed == "keys" || (trimmed.hasPrefix("keys/") && !trimmed.dropFirst(5).contains("/")) else {
            throw ValidationError("--scope must be /, /keys or /keys/NAME")
        }
        return (trimmed.isEmpty ? "" : "/" + trimmed) + "/providers/Microsoft.Authorization/" + resource
    }

    /// Role definition GUIDs by name, so people can write the role's name.
    static func definitions(_ connection: ConnectionOptions) throws -> [(id: String, name: String, type: String)] {
        let list = try connection.call(.GET, try path(scope: "/", "roleDefinitions"))["value"] as? [[String: Any]] ?? []
        return list.map { role in
            let properties = role["properties"] as? [String: Any] ?? [:]
            return (role["name"] as? String ?? "", properties["roleName"] as? String ?? "", properties["type"] as? String ?? "")
        }
    }

    static func roleID(_ nameOrID: String, _ connection: ConnectionOptions) throws -> String {
        if UUID(uuidString: nameOrID) != nil { return nameOrID.lowercased() }
        guard let match = try definitions(connection).first(where: { $0.name.lowercased() == nameOrID.lowercased() }) else {
            throw CommandFailure.exit("no role is named '\(nameOrID)': see hsmctl role definitions", code: CommandFailure.notFound)
        }
        return match.id
    }

    struct Definitions: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the roles: Managed HSM's nine built-in roles and custom ones.",
            discussion: """
                Examples:
                  hsmctl role definitions
                  hsmctl role definitions --output json
                """)
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            if connection.output == .json {
                return printJSON(try connection.call(.GET, try Role.path(scope: "/", "roleDefinitions")))
            }
            printTable(["ROLE", "TYPE", "ID"], try Role.definitions(connection).map { [$0.name, $0.type, $0.id] })
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List role assignments at a scope and below it.",
            discussion: """
                Examples:
                  hsmctl role list
                  hsmctl role list --scope /keys/payments --principal uid:1001
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "/, /keys or /keys/NAME.") var scope = "/"
        @Option(help: "Only this principal's assignments.") var principal: String?

        func run() throws {
            let filter = principal.map { "$filter=" + "principalId eq '\($0)'".addingPercentEncoding(withAllowedCharacters: .alphanumerics)! } ?? ""
            let json = try connection.call(.GET, try Role.path(scope: scope, "roleAssignments"), query: filter)
            if connection.output == .json { return printJSON(json) }
            let names = Dictionary(try Role.definitions(connection).map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
            let rows = (json["value"] as? [[String: Any]] ?? []).map { assignment -> [String] in
                let properties = assignment["properties"] as? [String: Any] ?? [:]
                let roleID = (properties["roleDefinitionId"] as? String ?? "").split(separator: "/").last.map(String.init) ?? ""
                return [properties["principalId"] as? String ?? "", names[roleID] ?? roleID, properties["scope"] as? String ?? "",
                        assignment["name"] as? String ?? ""]
            }
            printTable(["PRINCIPAL", "ROLE", "SCOPE", "ASSIGNMENT"], rows)
        }
    }

    /// Which role, for whom, where: what assign and remove both name.
    struct Grant: ParsableArguments {
        @Option(help: "The role's name or GUID.") var role: String
        @Option(help: "uid:N, gid:N or a bound name.") var principal: String
        @Option(help: "/, /keys or /keys/NAME.") var scope = "/"
    }

    struct Assign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a principal a role at a scope.",
            discussion: """
                Examples:
                  hsmctl role assign --role "Managed HSM Crypto User" --principal uid:1001 \\
                      --scope /keys/payments
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var grant: Grant

        func run() throws {
            let (role, principal, scope) = (grant.role, grant.principal, grant.scope)
            let roleID = try Role.roleID(role, connection)
            let name = UUID().uuidString.lowercased()
            let json = try connection.call(
                .PUT, try Role.path(scope: scope, "roleAssignments/\(name)"),
                body: ["properties": ["roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/\(roleID)",
                                      "principalId": principal]])
            if connection.output == .json { return printJSON(json) }
            print("assigned \(role) to \(principal) at \(scope) (assignment \(name))")
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a role from a principal at a scope.",
            discussion: """
                Examples:
                  hsmctl role remove --role "Managed HSM Crypto User" --principal uid:1001 \\
                      --scope /keys/payments
                """)
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var grant: Grant

        func run() throws {
            let (role, principal, scope) = (grant.role, grant.principal, grant.scope)
            let roleID = try Role.roleID(role, connection)
            let json = try connection.call(.GET, try Role.path(scope: scope, "roleAssignments"), query: "$filter=atScope()")
            let matching = (json["value"] as? [[String: Any]] ?? []).filter { assignment in
                let properties = assignment["properties"] as? [String: Any] ?? [:]
                return (properties["principalId"] as? String)?.lowercased() == principal.lowercased()
                    && (properties["roleDefinitionId"] as? String ?? "").lowercased().hasSuffix(roleID)
            }
            guard !matching.isEmpty else {
                throw CommandFailure.exit("\(principal) holds no \(role) at \(scope)", code: CommandFailure.notFound)
            }
            for assignment in matching {
                _ = try connection.call(.DELETE, try Role.path(scope: scope, "roleAssignments/\(assignment["name"] as? String ?? "")"))
            }
            print("removed \(role) from \(principal) at \(scope)")
        }
    }
}
