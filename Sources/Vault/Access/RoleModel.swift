import Foundation

/// A role: which data actions it allows. Built-in roles are Managed HSM's nine; custom roles are
/// the operator's, defined at scope `/`.
public struct RoleDefinition: Sendable, Equatable, Codable {
    public struct Permission: Sendable, Equatable, Codable {
        public var actions: [String]
        public var notActions: [String]
        public var dataActions: [String]
        public var notDataActions: [String]

        public init(actions: [String] = [], notActions: [String] = [], dataActions: [String], notDataActions: [String] = []) {
            (self.actions, self.notActions, self.dataActions, self.notDataActions) = (actions, notActions, dataActions, notDataActions)
        }
    }

    public var id: String
    public var roleName: String
    public var description: String
    public var isBuiltIn: Bool
    public var permissions: [Permission]
    public var assignableScopes: [String]

    /// Whether this role allows the action: some data action covers it and no not-data action does.
    public func allows(_ action: DataAction) -> Bool {
        permissions.contains { permission in
            permission.dataActions.contains(where: action.isCovered(by:))
                && !permission.notDataActions.contains(where: action.isCovered(by:))
        }
    }
}

/// A role granted to a principal at a scope.
public struct RoleAssignment: Sendable, Equatable, Codable {
    public var name: String
    public var scope: String
    public var roleDefinitionID: String
    public var principalID: String
    /// The initial administrators' assignments come from hsmd's options, not from the API.
    public var isInitial: Bool
}

/// Who is calling: a socket caller as the kernel names it, or the subject of a bearer token that
/// hsmd issued (HTTPS).
public struct Principal: Sendable, Equatable, Hashable {
    /// The kernel's credentials of a socket caller.
    public struct Credentials: Sendable, Equatable, Hashable {
        public let uid: UInt32
        public let gid: UInt32
        public let pid: Int32
    }

    /// The operator's name for this caller: a name bound to its uid (or else its gid), `uid:N`, or the
    /// token's subject.
    public let name: String
    /// Every principal id a role assignment may name to reach this caller (lower-cased): for a socket
    /// caller `uid:N`, `gid:N` and the names bound to either; for a token, its subject.
    public let identities: Set<String>
    /// Nil for a token caller.
    public let credentials: Credentials?

    /// The subject of a validated bearer token.
    public init(tokenSubject subject: String) {
        name = subject
        identities = [subject.lowercased()]
        credentials = nil
    }

    init(name: String, identities: Set<String>, credentials: Credentials?) {
        (self.name, self.identities, self.credentials) = (name, identities, credentials)
    }
}

/// An operator's name for a uid or a gid, e.g. `alice=uid:1001` or `signers=gid:2000`.
public struct PrincipalBinding: Sendable, Equatable {
    public enum Subject: Sendable, Equatable {
        case uid(UInt32)
        case gid(UInt32)
    }

    public let name: String
    public let subject: Subject

    /// Parses `NAME=uid:N` or `NAME=gid:N`.
    public init?(_ text: String) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[0].contains(":"),
            parts[0].allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) })
        else { return nil }
        let subject = parts[1].split(separator: ":").map(String.init)
        guard subject.count == 2, let number = UInt32(subject[1]) else { return nil }
        switch subject[0] {
        case "uid": self.subject = .uid(number)
        case "gid": self.subject = .gid(number)
        default: return nil
        }
        name = parts[0]
    }
}

/// Role scopes: `/`, `/keys`, `/keys/{name}`. A scope covers itself and everything under it.
public enum RoleScope {
    public static func normalized(_ scope: String) throws(VaultError) -> String {
        var parts = scope.split(separator: "/").map(String.init)
        guard parts.count <= 2, parts.first.map({ $0.lowercased() == "keys" }) ?? true else {
            throw .badParameter("scope must be /, /keys or /keys/{name}; it is '\(scope.prefix(140))'")
        }
        if !parts.isEmpty { parts[0] = "keys" }
        if parts.count == 2, !TokenKeyID.isValidName(parts[1]) {
            throw .badParameter("scope names an invalid key name")
        }
        return "/" + parts.joined(separator: "/")
    }

    public static func covers(_ assigned: String, _ target: String) -> Bool {
        coversLowercased(assigned.lowercased(), target.lowercased())
    }

    static func coversLowercased(_ assigned: String, _ target: String) -> Bool {
        assigned == "/" || target == assigned || target.hasPrefix(assigned + "/")
    }

    /// The scope of one key.
    public static func key(_ name: String) -> String { "/keys/\(name)" }
    public static let keys = "/keys"
    public static let root = "/"
}
