import Foundation
import Synchronization

/// Local RBAC: who may perform which data action at which scope. Deny by default; the initial
/// administrators (hsmd's own uid and root unless configured otherwise) hold Administrator, Crypto
/// Officer and Crypto User at `/`, like the administrators named when a Managed HSM is activated.
public final class AccessControl: Sendable {
    private struct State {
        var customRoles: [String: RoleDefinition] { didSet { grants = nil } }
        var assignments: [String: RoleAssignment] { didSet { grants = nil } }
        /// Every assignment with its role resolved and its names lower-cased, made once per change
        /// of roles or assignments rather than on every request's decision.
        var grants: [Grant]?

        init(customRoles: [String: RoleDefinition], assignments: [String: RoleAssignment]) {
            (self.customRoles, self.assignments) = (customRoles, assignments)
        }
    }

    private struct Grant {
        let principalID: String
        let scope: String
        /// What the role allows, worked out from its (wildcard) permissions once.
        let actions: Set<DataAction>
    }

    static let maximumCustomRoles = 50
    static let maximumAssignmentsAtHSMScope = 50
    static let maximumAssignmentsPerKey = 10

    private let store: MetadataStore
    private let bindings: [PrincipalBinding]
    private let initialAssignments: [RoleAssignment]
    private let state: Mutex<State>

    /// `initialAdministrators` are principal ids (`uid:0`, `alice`, `gid:50`).
    public init(vault: KeyVault, initialAdministrators: [String], bindings: [PrincipalBinding]) throws {
        store = vault.store
        self.bindings = bindings
        var seen = Set<String>()
        initialAssignments = initialAdministrators.filter { seen.insert($0.lowercased()).inserted }.flatMap { principal in
            BuiltInRoles.initialAdministratorRoles.map { role in
                RoleAssignment(
                    name: Self.stableGUID("\(principal.lowercased())|\(role)"), scope: RoleScope.root,
                    roleDefinitionID: role, principalID: principal, isInitial: true)
            }
        }
        state = Mutex(State(
            customRoles: Dictionary(uniqueKeysWithValues: try store.roleDefinitions().map { ($0.id, $0) }),
            assignments: Dictionary(uniqueKeysWithValues: try store.roleAssignments().map { ($0.name, $0) })))
    }

    /// A GUID-shaped name that is the same on every start (FNV-1a over the text, twice).
    static func stableGUID(_ text: String) -> String {
        func fnv(_ seed: UInt64) -> UInt64 {
            text.utf8.reduce(seed) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        }
        let high = fnv(0xcbf2_9ce4_8422_2325)
        let low = fnv(0x84222325_cbf29ce4)
        let hex = String(format: "%016llx%016llx", high, low)
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }

    // MARK: Identity

    /// Names a caller from its peer credentials: a binding of its uid first, then of its gid.
    public func principal(uid: UInt32, gid: UInt32, pid: Int32) -> Principal {
        let matching = bindings.filter { $0.subject == .uid(uid) || $0.subject == .gid(gid) }
        let name = matching.first { $0.subject == .uid(uid) }?.name ?? matching.first?.name ?? "uid:\(uid)"
        let identities = Set(["uid:\(uid)", "gid:\(gid)"] + matching.map { $0.name.lowercased() })
        return Principal(name: name, identities: identities, credentials: .init(uid: uid, gid: gid, pid: pid))
    }

    // MARK: Decisions

    /// Throws 403 ForbiddenByRbac unless an assignment of the caller's allows the action at the scope.
    /// Checked before anything is looked up, so a refusal says nothing about what exists.
    public func authorize(_ principal: Principal, _ action: DataAction, scope: String) throws(VaultError) {
        guard isAllowed(principal, action, scope: scope) else {
            throw .forbiddenByRBAC(
                "Caller is not authorized to perform action on resource. Caller: \(principal.name), Action: '\(action.qualifiedName)', Scope: '\(scope)'")
        }
    }

    public func isAllowed(_ principal: Principal, _ action: DataAction, scope: String) -> Bool {
        let target = scope.lowercased()
        return currentGrants().contains { grant in
            principal.identities.contains(grant.principalID)
                && RoleScope.coversLowercased(grant.scope, target)
                && grant.actions.contains(action)
        }
    }

    private func currentGrants() -> [Grant] {
        state.withLock { state in
            if let grants = state.grants { return grants }
            var roles = state.customRoles
            for role in BuiltInRoles.all { roles[role.id] = role }
            var actionsOfRole: [String: Set<DataAction>] = [:]
            let grants = (initialAssignments + Array(state.assignments.values)).compactMap { assignment -> Grant? in
                let roleID = Self.roleID(assignment.roleDefinitionID)
                guard let role = roles[roleID] else { return nil }
                let actions = actionsOfRole[roleID] ?? Set(DataAction.allCases.filter(role.allows))
                actionsOfRole[roleID] = actions
                return Grant(principalID: assignment.principalID.lowercased(), scope: assignment.scope.lowercased(), actions: actions)
            }
            state.grants = grants
            return grants
        }
    }

    /// The caller's assignments with their roles, for `hsmctl status`.
    public func roles(of principal: Principal) -> [(RoleDefinition, RoleAssignment)] {
        let (assignments, roles) = snapshot()
        return assignments.compactMap { assignment in
            guard principal.identities.contains(assignment.principalID.lowercased()),
                let role = roles[Self.roleID(assignment.roleDefinitionID)]
            else { return nil }
            return (role, assignment)
        }
    }

    private func snapshot() -> ([RoleAssignment], [String: RoleDefinition]) {
        state.withLock { state in
            var roles = state.customRoles
            for role in BuiltInRoles.all { roles[role.id] = role }
            return (initialAssignments + Array(state.assignments.values), roles)
        }
    }

    /// The GUID at the end of a role definition id, in whatever form a client sent it.
    public static func roleID(_ reference: String) -> String {
        String(reference.split(separator: "/").last ?? "").lowercased()
    }

    // MARK: Role definitions

    public func roleDefinitions() -> [RoleDefinition] {
        BuiltInRoles.all + state.withLock { Array($0.customRoles.values) }.sorted { $0.roleName < $1.roleName }
    }

    public func roleDefinition(_ id: String) throws(VaultError) -> RoleDefinition {
        let key = Self.roleID(id)
        if let builtIn = BuiltInRoles.all.first(where: { $0.id == key }) { return builtIn }
        guard let custom = state.withLock({ $0.customRoles[key] }) else {
            throw .notFound(code: "RoleDefinitionNotFound", message: "The role definition \(id.prefix(80)) does not exist.")
        }
        return custom
    }

    /// Creates or replaces a custom role. Built-in roles cannot change.
    public func putRoleDefinition(
        _ id: String, roleName: String, description: String, permissions: [RoleDefinition.Permission], assignableScopes: [String]
    ) throws(VaultError) -> RoleDefinition {
        let key = Self.roleID(id)
        guard UUID(uuidString: key) != nil else { throw .badParameter("roleDefinitionName must be a GUID") }
        guard !BuiltInRoles.all.contains(where: { $0.id == key }) else {
            throw .badParameter("built-in roles cannot be changed; define a custom role with a new GUID")
        }
        guard !roleName.isEmpty else { throw .badParameter("properties.roleName is required") }
        if roleDefinitions().contains(where: { $0.roleName.lowercased() == roleName.lowercased() && $0.id != key }) {
            throw .conflict("a role named '\(roleName.prefix(80))' already exists")
        }
        guard assignableScopes.allSatisfy({ $0 == "/" }) else {
            throw .badParameter("properties.assignableScopes: custom roles are defined at scope / only")
        }
        for pattern in permissions.flatMap({ $0.dataActions + $0.notDataActions }) where !Self.isKnownPattern(pattern) {
            throw .badParameter("properties.permissions: '\(pattern.prefix(120))' is not a Managed HSM data action")
        }
        let definition = RoleDefinition(
            id: key, roleName: roleName, description: description, isBuiltIn: false, permissions: permissions, assignableScopes: ["/"])
        try state.withLock { state throws(VaultError) in
            if state.customRoles[key] == nil && state.customRoles.count >= Self.maximumCustomRoles {
                throw .badParameter("an HSM has at most \(Self.maximumCustomRoles) custom role definitions")
            }
            try write { try store.save(definition) }
            state.customRoles[key] = definition
        }
        return definition
    }

    public func deleteRoleDefinition(_ id: String) throws(VaultError) -> RoleDefinition {
        let definition = try roleDefinition(id)
        guard !definition.isBuiltIn else { throw .badParameter("built-in roles cannot be deleted") }
        try state.withLock { state throws(VaultError) in
            if state.assignments.values.contains(where: { Self.roleID($0.roleDefinitionID) == definition.id }) {
                throw .conflict("role \(definition.roleName) is still assigned; delete its assignments first")
            }
            try write { try store.deleteRoleDefinition(id: definition.id) }
            state.customRoles[definition.id] = nil
        }
        return definition
    }

    private static func isKnownPattern(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasSuffix("*") {
            return DataAction.allCases.contains { $0.isCovered(by: pattern) }
        }
        return DataAction.allCases.contains { $0.qualifiedName.lowercased() == pattern.lowercased() }
    }

    // MARK: Role assignments

    /// Assignments at a scope, and below it unless `atScopeOnly`; optionally of one principal.
    public func roleAssignments(scope: String, atScopeOnly: Bool, principalID: String?) -> [RoleAssignment] {
        let (assignments, _) = snapshot()
        return assignments.filter { assignment in
            (atScopeOnly ? assignment.scope.lowercased() == scope.lowercased() : RoleScope.covers(scope, assignment.scope))
                && (principalID.map { $0.lowercased() == assignment.principalID.lowercased() } ?? true)
        }.sorted { ($0.scope, $0.name) < ($1.scope, $1.name) }
    }

    /// An assignment at `scope` or below it: a caller entitled at one key's scope cannot reach the
    /// assignments above it.
    public func roleAssignment(_ name: String, within scope: String) throws(VaultError) -> RoleAssignment {
        guard let assignment = snapshot().0.first(where: { $0.name.lowercased() == name.lowercased() && RoleScope.covers(scope, $0.scope) })
        else {
            throw .notFound(code: "RoleAssignmentNotFound", message: "The role assignment \(name.prefix(80)) does not exist.")
        }
        return assignment
    }

    public func putRoleAssignment(_ name: String, scope: String, roleDefinitionID: String, principalID: String) throws(VaultError) -> RoleAssignment {
        guard UUID(uuidString: name) != nil else { throw .badParameter("roleAssignmentName must be a GUID") }
        let scope = try RoleScope.normalized(scope)
        _ = try roleDefinition(roleDefinitionID)
        guard !principalID.isEmpty, principalID.count <= 256 else { throw .badParameter("properties.principalId is required") }
        let assignment = RoleAssignment(
            name: name.lowercased(), scope: scope, roleDefinitionID: roleDefinitionID, principalID: principalID, isInitial: false)
        try state.withLock { state throws(VaultError) in
            if let existing = state.assignments[assignment.name] {
                guard existing == assignment else {
                    throw .conflict("role assignment \(name) already exists with other properties; assignments cannot be changed, only deleted")
                }
                return
            }
            let atScope = state.assignments.values.filter { $0.scope == scope }.count
            let limit = scope.hasPrefix("/keys/") ? Self.maximumAssignmentsPerKey : Self.maximumAssignmentsAtHSMScope
            if atScope >= limit {
                throw .badParameter("scope \(scope) has the maximum of \(limit) role assignments")
            }
            try write { try store.save(assignment) }
            state.assignments[assignment.name] = assignment
        }
        return assignment
    }

    public func deleteRoleAssignment(_ name: String, within scope: String) throws(VaultError) -> RoleAssignment {
        let assignment = try roleAssignment(name, within: scope)
        guard !assignment.isInitial else {
            throw .badParameter("the initial administrators' assignments come from hsmd's --admin option and cannot be deleted")
        }
        try state.withLock { state throws(VaultError) in
            try write { try store.deleteRoleAssignment(name: assignment.name) }
            state.assignments[assignment.name] = nil
        }
        return assignment
    }

    private func write(_ body: () throws -> Void) throws(VaultError) {
        do {
            try body()
        } catch {
            throw .internalFailure("the metadata store could not record a role change: \(error)")
        }
    }
}
