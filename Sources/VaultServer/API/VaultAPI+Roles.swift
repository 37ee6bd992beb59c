import Vault

/// Local RBAC as Azure serves it: role definitions and role assignments under
/// `/{scope}/providers/Microsoft.Authorization/…`, where scope is `/`, `/keys` or `/keys/{name}`
/// (clients send scope `/` as `///providers`, which arrives collapsed).
extension VaultAPI {
    static let provider = "providers/Microsoft.Authorization"

    func registerRoleRoutes(in router: inout Router) {
        // Who the caller is and what it holds: no role is needed to ask about oneself.
        router.add(.GET, "/hsmd/whoami", .immediate { request in
            guard let principal = access.principal(request) else { return Response(status: .unauthorized) }
            let roles = access.roles(of: principal).map { role, assignment in
                WhoAmIJSON.Role(roleName: role.roleName, roleDefinitionId: role.id, scope: assignment.scope, principalId: assignment.principalID)
            }
            return .json(WhoAmIJSON(principal: principal.name, identities: principal.identities.sorted(), roles: roles))
        })
        for scope in ["", "/keys", "/keys/{name}"] {
            let definitions = "\(scope)/\(Self.provider)/roleDefinitions"
            let assignments = "\(scope)/\(Self.provider)/roleAssignments"
            router.add(.GET, definitions, api("roleDefinitions.list", .roleDefinitionsRead, .roleScope) { request, _ in
                var roles = access.roleDefinitions()
                if let wanted = Self.filterValue(request.query["$filter"], field: "roleName") {
                    roles = roles.filter { $0.roleName.lowercased() == wanted.lowercased() }
                }
                return .json(ListJSON(value: roles.map(Self.definitionJSON), nextLink: nil))
            })
            router.add(.GET, "\(definitions)/{role}", api("roleDefinitions.get", .roleDefinitionsRead, .roleScope) { request, _ in
                .json(Self.definitionJSON(try access.roleDefinition(request.parameters["role"] ?? "")))
            })
            // Role definitions are global (scope /), whatever scope the path names.
            router.add(.PUT, "\(definitions)/{role}", api("roleDefinitions.put", .roleDefinitionsWrite, .root) { request, _ in
                let body = try decode(RoleDefinitionBody.self, request)
                let definition = try access.putRoleDefinition(
                    request.parameters["role"] ?? "", roleName: body.properties.roleName ?? "",
                    description: body.properties.description ?? "",
                    permissions: (body.properties.permissions ?? []).map {
                        RoleDefinition.Permission(
                            actions: $0.actions ?? [], notActions: $0.notActions ?? [], dataActions: $0.dataActions ?? [],
                            notDataActions: $0.notDataActions ?? [])
                    },
                    assignableScopes: body.properties.assignableScopes ?? ["/"])
                return .json(Self.definitionJSON(definition), status: .created)
            })
            router.add(.DELETE, "\(definitions)/{role}", api("roleDefinitions.delete", .roleDefinitionsDelete, .root) { request, _ in
                .json(Self.definitionJSON(try access.deleteRoleDefinition(request.parameters["role"] ?? "")))
            })
            router.add(.GET, assignments, api("roleAssignments.list", .roleAssignmentsRead, .roleScope) { request, _ in
                let filter = request.query["$filter"] ?? ""
                let list = access.roleAssignments(
                    scope: Scope.roleScope.resolve(request), atScopeOnly: filter.lowercased().contains("atscope()"),
                    principalID: Self.filterValue(filter, field: "principalId"))
                return .json(ListJSON(value: list.map(Self.assignmentJSON), nextLink: nil))
            })
            router.add(.GET, "\(assignments)/{assignment}", api("roleAssignments.get", .roleAssignmentsRead, .roleScope) { request, _ in
                .json(Self.assignmentJSON(try access.roleAssignment(
                    request.parameters["assignment"] ?? "", within: Scope.roleScope.resolve(request))))
            })
            router.add(.PUT, "\(assignments)/{assignment}", api("roleAssignments.put", .roleAssignmentsWrite, .roleScope) { request, _ in
                let body = try decode(RoleAssignmentBody.self, request)
                let assignment = try access.putRoleAssignment(
                    request.parameters["assignment"] ?? "", scope: Scope.roleScope.resolve(request),
                    roleDefinitionID: body.properties.roleDefinitionId, principalID: body.properties.principalId)
                return .json(Self.assignmentJSON(assignment), status: .created)
            })
            router.add(.DELETE, "\(assignments)/{assignment}", api("roleAssignments.delete", .roleAssignmentsDelete, .roleScope) { request, _ in
                .json(Self.assignmentJSON(try access.deleteRoleAssignment(
                    request.parameters["assignment"] ?? "", within: Scope.roleScope.resolve(request))))
            })
        }
    }

    /// The value of `field eq 'value'` in an OData `$filter`.
    static func filterValue(_ filter: String?, field: String) -> String? {
        guard let filter, let range = filter.range(of: "\(field) eq '", options: .caseInsensitive) else { return nil }
        let rest = filter[range.upperBound...]
        return rest.firstIndex(of: "'").map { String(rest[..<$0]) }
    }

    static func definitionJSON(_ definition: RoleDefinition) -> RoleDefinitionJSON {
        RoleDefinitionJSON(
            id: "Microsoft.KeyVault/\(provider)/roleDefinitions/\(definition.id)", name: definition.id,
            properties: .init(
                roleName: definition.roleName, description: definition.description,
                type: definition.isBuiltIn ? "AKVBuiltInRole" : "CustomRole", permissions: definition.permissions,
                assignableScopes: definition.assignableScopes))
    }

    static func assignmentJSON(_ assignment: RoleAssignment) -> RoleAssignmentJSON {
        let prefix = assignment.scope == "/" ? "" : assignment.scope
        return RoleAssignmentJSON(
            id: "\(prefix)/\(provider)/roleAssignments/\(assignment.name)", name: assignment.name,
            properties: .init(
                scope: assignment.scope,
                roleDefinitionId: "Microsoft.KeyVault/\(provider)/roleDefinitions/\(AccessControl.roleID(assignment.roleDefinitionID))",
                principalId: assignment.principalID))
    }
}

struct RoleAssignmentBody: Decodable {
    struct Properties: Decodable {
        var roleDefinitionId: String
        var principalId: String
    }
    var properties: Properties
}

struct RoleDefinitionBody: Decodable {
    struct Permission: Decodable {
        var actions, notActions, dataActions, notDataActions: [String]?
    }
    struct Properties: Decodable {
        var roleName: String?
        var description: String?
        var permissions: [Permission]?
        var assignableScopes: [String]?
    }
    var properties: Properties
}

struct RoleAssignmentJSON: Encodable {
    struct Properties: Encodable {
        var scope: String
        var roleDefinitionId: String
        var principalId: String
    }
    var id: String
    var name: String
    var type = "Microsoft.Authorization/roleAssignments"
    var properties: Properties
}

struct RoleDefinitionJSON: Encodable {
    struct Properties: Encodable {
        var roleName: String
        var description: String
        var type: String
        var permissions: [RoleDefinition.Permission]
        var assignableScopes: [String]
    }
    var id: String
    var name: String
    var type = "Microsoft.Authorization/roleDefinitions"
    var properties: Properties
}

struct WhoAmIJSON: Encodable {
    struct Role: Encodable {
        var roleName: String
        var roleDefinitionId: String
        var scope: String
        var principalId: String
    }
    var principal: String
    var identities: [String]
    var roles: [Role]
}
