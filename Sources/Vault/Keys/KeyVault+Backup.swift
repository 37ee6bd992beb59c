import CPKCS11
import Foundation

/// Backup blobs: every version of a key, its material wrapped by the domain key inside the token,
/// and all of it authenticated by an HMAC whose key is wrapped the same way. Opaque to callers;
/// restorable only into an hsmd whose token holds the same domain key.
struct BackupEnvelope: Codable {
    var payload: Data
    var macKey: Data
    var mac: Data
}

struct BackupPayload: Codable {
    static let currentFormat = "hsmd-backup-1"

    struct Version: Codable {
        var version: String
        var kty: String
        var bits: Int
        var curve: String?
        var hmac: Bool
        var keyOps: [String]
        var attributes: KeyAttributes
        var tags: [String: String]
        var publicKey: StoredPublicKey?
        var wrapped: Data
    }

    var format: String
    var name: String
    var rotationPolicy: RotationPolicy?
    var versions: [Version]
}

extension KeyVault {
    public func backupKey(_ name: String) throws(VaultError) -> [UInt8] {
        let record = try activeRecord(name)
        var versions: [BackupPayload.Version] = []
        for version in record.versions {
            let wrapped: [UInt8]
            do {
                wrapped = try token.exportWrapped(tokenID(record, version))
            } catch .token(let error) where [CKR_KEY_UNEXTRACTABLE, CKR_KEY_NOT_WRAPPABLE].contains(error.code) {
                throw .conflict(
                    "version \(version.version) of \(record.name) was adopted as a non-extractable key: it cannot leave the token, not even in a backup")
            } catch {
                throw VaultError(error)
            }
            let (kty, bits, curve): (String, Int, String?) = switch version.spec {
            case .rsa(let bits): ("rsa", bits, nil)
            case .ec(let curve): ("ec", 0, curve.rawValue)
            case .oct(let bits): ("oct", bits, nil)
            }
            versions.append(.init(
                version: version.version, kty: kty, bits: bits, curve: curve, hmac: version.isHMACKey,
                keyOps: version.operations.azureNames, attributes: version.attributes, tags: version.tags,
                publicKey: version.publicKey.map(StoredPublicKey.init), wrapped: Data(wrapped)))
        }
        let payload = try inVault {
            try JSONEncoder().encode(BackupPayload(
                format: BackupPayload.currentFormat, name: record.name, rotationPolicy: record.rotationPolicy, versions: versions))
        }
        let (macKey, mac) = try inVault { try token.authenticateForBackup(Array(payload)) }
        return try inVault { Array(try JSONEncoder().encode(BackupEnvelope(payload: payload, macKey: Data(macKey), mac: Data(mac)))) }
    }

    /// Restores every version of a backed-up key under its name and version ids.
    public func restoreKey(_ blob: [UInt8]) throws(VaultError) -> KeyBundle {
        let notABackup = VaultError.badParameter("value is not an hsmd key backup, or it was damaged")
        guard let envelope = try? JSONDecoder().decode(BackupEnvelope.self, from: Data(blob)) else { throw notABackup }
        let authentic = try inVault {
            try token.verifyBackup(Array(envelope.payload), wrappedKey: Array(envelope.macKey), mac: Array(envelope.mac))
        }
        guard authentic else {
            throw .badParameter("the backup was made in another security domain, or it was altered: it cannot be restored here")
        }
        guard let payload = try? JSONDecoder().decode(BackupPayload.self, from: envelope.payload),
            payload.format == BackupPayload.currentFormat, !payload.versions.isEmpty
        else { throw notABackup }
        try Self.validateName(payload.name)
        let record = KeyRecord(
            name: payload.name, versions: try payload.versions.map(Self.restoredVersion), deletion: nil,
            rotationPolicy: payload.rotationPolicy)

        return try locks.withLock(payload.name) { () throws(VaultError) -> KeyBundle in
            if let existing = self.record(payload.name) {
                if existing.deletion != nil {
                    throw .deletedButRecoverable(
                        "Key \(existing.name) is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.")
                }
                throw .conflict("Key \(existing.name) already exists; restore needs a name that is not in use")
            }
            try writing("the restore of \(record.name)") { try store.insertPending(record: record) }
            do throws(VaultError) {
                for (version, saved) in zip(record.versions, payload.versions) {
                    _ = try inVault {
                        try token.importWrapped(
                            tokenID(record, version), spec: version.spec, usage: version.operations, wrapped: Array(saved.wrapped),
                            publicKey: version.publicKey)
                    }
                }
                try writing("the restore of \(record.name)") {
                    try store.activate(name: record.name, versions: record.versions.map(\.version))
                }
            } catch {
                for version in record.versions { try? token.destroy(tokenID(record, version)) }
                try? store.removeKey(name: record.name)
                throw error
            }
            store(record)
            return KeyBundle(name: record.name, version: record.latest!, deletion: nil)
        }
    }

    private static func restoredVersion(_ saved: BackupPayload.Version) throws(VaultError) -> KeyVersion {
        let damaged = VaultError.badParameter("value is not an hsmd key backup, or it was damaged")
        let spec: KeySpec
        switch saved.kty {
        case "rsa": spec = .rsa(bits: saved.bits)
        case "ec":
            guard let curve = Curve(rawValue: saved.curve ?? "") else { throw damaged }
            spec = .ec(curve)
        case "oct": spec = .oct(bits: saved.bits)
        default: throw damaged
        }
        guard TokenKeyID.isValidVersion(saved.version) else { throw damaged }
        return KeyVersion(
            version: saved.version, spec: spec, isHMACKey: saved.hmac, operations: try KeyUsage(azureNames: saved.keyOps),
            attributes: saved.attributes, tags: saved.tags, publicKey: saved.publicKey?.publicKey)
    }
}
