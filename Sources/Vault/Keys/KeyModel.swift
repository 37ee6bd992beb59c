/// One version of a key: what the metadata store keeps beside the token object.
public struct KeyVersion: Sendable, Equatable {
    public var version: String
    public var spec: KeySpec
    public var isHMACKey: Bool
    public var operations: KeyUsage
    public var attributes: KeyAttributes
    public var tags: [String: String]
    /// Kept in the store too, so a key's public part is served without touching the token.
    public var publicKey: PublicKey?

    public var type: KeyType { KeyType(spec) }
}

/// `enabled`, `nbf`, `exp`, `created`, `updated` of a version (IntDate seconds).
public struct KeyAttributes: Sendable, Equatable, Codable {
    public var enabled: Bool
    public var notBefore: Int64?
    public var expires: Int64?
    public var created: Int64
    public var updated: Int64
}

/// A key: its versions in creation order (the last is the current one), and its deletion state.
public struct KeyRecord: Sendable, Equatable {
    public var name: String
    public var versions: [KeyVersion]
    public var deletion: Deletion?
    public var rotationPolicy: RotationPolicy?

    public var latest: KeyVersion? { versions.last }

    public func version(_ id: String) -> KeyVersion? {
        versions.first { $0.version == id.lowercased() }
    }
}

public struct Deletion: Sendable, Equatable {
    public var deletedDate: Int64
    public var scheduledPurgeDate: Int64
}

/// A version as the API returns it, with its key's name and deletion state.
public struct KeyBundle: Sendable, Equatable {
    public let name: String
    public let version: KeyVersion
    public let deletion: Deletion?
}

/// One page of a listing; `nextToken` continues it.
public struct Page<Item: Sendable>: Sendable {
    public let items: [Item]
    public let nextToken: String?
}

/// Fixed when the vault is first opened, like a Managed HSM's at activation.
public struct VaultSettings: Sendable, Equatable, Codable {
    public var retentionDays: Int
    public var purgeProtection: Bool

    public init(retentionDays: Int = 90, purgeProtection: Bool = false) {
        self.retentionDays = retentionDays
        self.purgeProtection = purgeProtection
    }

    /// Azure's `recoveryLevel` for these settings.
    public var recoveryLevel: String {
        switch (retentionDays == 90, purgeProtection) {
        case (true, false): "Recoverable+Purgeable"
        case (true, true): "Recoverable"
        case (false, false): "CustomizedRecoverable+Purgeable"
        case (false, true): "CustomizedRecoverable"
        }
    }
}
