import Foundation

/// Where hsmd keeps everything it owns. See docs/state-directory.md for the layout.
public struct StateDirectory: Sendable {
    public let root: URL

    public init(path: String) {
        root = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    public var lockFile: URL { root.appendingPathComponent("hsmd.lock") }
    /// Present only while provisioning runs: finding it on start means a crash interrupted it.
    public var provisioningMarker: URL { root.appendingPathComponent("provisioning") }
    /// Written last by provisioning: its presence means the token is complete.
    public var manifest: URL { root.appendingPathComponent("token.json") }
    public var softHSMConfig: URL { root.appendingPathComponent("softhsm2.conf") }
    public var tokenDirectory: URL { root.appendingPathComponent("token", isDirectory: true) }
    public var pinDirectory: URL { root.appendingPathComponent("pins", isDirectory: true) }
    public var userPINFile: URL { pinDirectory.appendingPathComponent("user.pin") }
    public var soPINFile: URL { pinDirectory.appendingPathComponent("so.pin") }
    public var defaultSocket: URL { root.appendingPathComponent("hsmd.sock") }
    /// The HTTPS CA and server certificate, with their private keys (0600).
    public var tlsDirectory: URL { root.appendingPathComponent("tls", isDirectory: true) }
    /// The audit log's files.
    public var auditDirectory: URL { root.appendingPathComponent("audit", isDirectory: true) }
    /// The metadata store (SQLite), with its journal beside it.
    public var metadataStore: URL { root.appendingPathComponent("metadata.sqlite") }

    /// Names provisioning creates; anything else in the directory means it is not ours.
    static let ownNames: Set<String> = [
        "hsmd.lock", "provisioning", "token.json", "token.json.tmp", "softhsm2.conf", "token", "pins", "hsmd.sock",
        "audit", "tls", "metadata.sqlite", "metadata.sqlite-journal", "metadata.sqlite-wal", "metadata.sqlite-shm",
    ]
}

/// What provisioning records about the token it made, so later starts find and trust it.
public struct TokenManifest: Codable, Sendable {
    public static let currentFormat = 1
    public var format: Int
    public var label: String
    public var serialNumber: String
    public var created: Date
    /// Whether hsmd generated the PINs into `pins/` (else the operator supplies them each start).
    public var generatedPINs: Bool
    public var domainKeyLabel: String
    /// Set when hsmd was started on a token it did not provision: the SoftHSM2 config that names that
    /// token's directory, kept so every later start opens the same token. Nil: the state directory's own.
    public var existingTokenConfig: String?
}
