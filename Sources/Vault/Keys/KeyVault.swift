import Foundation
import Logging
import Synchronization

/// The vault core: Managed HSM's key semantics (versions, attributes, soft delete, backup,
/// rotation) over hsmd's keys in the token and the metadata store beside it.
///
/// Memory holds every key's metadata, loaded once at open; each change is written to the store
/// first and applied to memory after it committed. Changes to one name are serialised. Every method
/// blocks on the token or the store: call them from a thread pool, never from an event loop.
public final class KeyVault: Sendable {
    public let token: VaultToken
    public let settings: VaultSettings
    let store: MetadataStore
    let records: Mutex<KeyTable>
    let locks = NameLocks()
    let logger: Logger
    let clock: @Sendable () -> Int64

    /// Opens the metadata store, fixes the settings on first open, and reconciles the store with the
    /// token after a crash.
    /// `rebuildMetadata`: a store that is missing or empty while the token holds hsmd's keys is
    /// rebuilt from the token (`rebuildFromToken`) instead of refused.
    public init(
        token: VaultToken, storePath: URL, settings requested: VaultSettings?, logger: Logger,
        rebuildMetadata: Bool = false,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) throws {
        self.token = token
        self.logger = logger
        self.clock = clock
        let storeExisted = FileManager.default.fileExists(atPath: storePath.path)
        do {
            store = try MetadataStore(path: storePath)
            // A store without settings was never opened before: fine for a new token, but a token
            // that already holds hsmd's keys means the store was lost, and an empty vault would hide them.
            if try store.settings() == nil, token.keyCount > 0, !rebuildMetadata {
                // A refused start changes nothing: the file opening it made goes again.
                if !storeExisted { try? FileManager.default.removeItem(at: storePath) }
                throw VaultOpenError(
                    "the metadata store \(storePath.path) is missing or empty, but the token holds \(token.keyCount) hsmd key versions; restore metadata.sqlite from a backup of the state directory, or rebuild what the token knows with hsmd --rebuild-metadata (hsmd will not start an empty vault over existing keys)")
            }
        } catch let error as VaultOpenError {
            throw error
        } catch {
            throw VaultOpenError("cannot open the metadata store \(storePath.path): \(error)")
        }
        let isNew = try store.settings() == nil
        settings = try Self.fixedSettings(store: store, requested: requested)
        if isNew && rebuildMetadata && token.keyCount > 0 {
            records = Mutex(KeyTable([]))
            try rebuildFromToken()
            return
        }
        let snapshot = try store.loadAll()
        // A key whose only versions were pending has none left once reconciled.
        records = Mutex(KeyTable(snapshot.records.filter { !$0.versions.isEmpty }))
        try reconcile(snapshot)
    }

    private static func fixedSettings(store: MetadataStore, requested: VaultSettings?) throws -> VaultSettings {
        if let stored = try store.settings() {
            if let requested, requested != stored {
                throw VaultOpenError(
                    "this vault was created with soft-delete retention \(stored.retentionDays) days and purge protection \(stored.purgeProtection ? "on" : "off"); these are fixed for its life, like a Managed HSM's")
            }
            return stored
        }
        let settings = requested ?? VaultSettings()
        guard (7...90).contains(settings.retentionDays) else {
            throw VaultOpenError("soft-delete retention must be 7 to 90 days, not \(settings.retentionDays)")
        }
        try store.saveSettings(settings)
        return settings
    }

    // MARK: Looking keys up

    func now() -> Int64 { clock() }

    func record(_ name: String) -> KeyRecord? {
        records.withLock { $0[name] }
    }

    /// A key that exists and is not deleted.
    func activeRecord(_ name: String) throws(VaultError) -> KeyRecord {
        guard let record = record(name), record.deletion == nil, !record.versions.isEmpty else {
            throw .keyNotFound("A key with (name/id) \(name) was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command.")
        }
        return record
    }

    /// A version of an active key; an empty or absent version means the latest.
    func activeVersion(_ name: String, _ version: String?) throws(VaultError) -> (KeyRecord, KeyVersion) {
        let record = try activeRecord(name)
        if let version, !version.isEmpty {
            guard let found = record.version(version) else {
                throw .keyNotFound("A key with (name/id) \(name)/\(version) was not found in this key vault.")
            }
            return (record, found)
        }
        return (record, record.latest!)
    }

    func store(_ record: KeyRecord) {
        records.withLock { $0.store(record) }
    }

    func forget(_ name: String) {
        records.withLock { $0.remove(name) }
    }

    func tokenID(_ record: KeyRecord, _ version: KeyVersion) -> TokenKeyID {
        TokenKeyID(stored: record.name, version: version.version)
    }

    /// Runs a store write, turning its failure into a 500 whose detail goes to the log only.
    func writing<R>(_ what: String, _ body: () throws -> R) throws(VaultError) -> R {
        do {
            return try body()
        } catch {
            logger.error("metadata store write failed", metadata: ["operation": "\(what)", "error": "\(error)"])
            if let condition = store.environmentalCondition(error) {
                throw .unavailable("the metadata store could not record \(what) because \(condition); the request did not complete. Retry once the operator has fixed it")
            }
            throw .internalFailure("the metadata store could not record \(what)")
        }
    }

    // MARK: After a crash

    /// Undoes creations that never committed, finishes purges that started, and reports keys whose
    /// token objects are gone. Token objects that look like hsmd keys but have no metadata at all are
    /// left alone: hsmd never made them (it writes the metadata first), so they are not its to destroy.
    private func reconcile(_ snapshot: MetadataStore.Snapshot) throws {
        for (name, version) in snapshot.pending {
            let id = TokenKeyID(stored: name, version: version.version)
            // An interrupted adoption gives the objects back their old names; anything else was hsmd's
            // own, whole or half made, and goes.
            if let origin = version.tags[Self.adoptedFromTag], let (label, objectID) = Self.parseOrigin(origin) {
                if (try? token.key(id)) != nil { try token.relabel(id, label: label, objectID: objectID) }
            } else {
                try token.destroyAllObjects(of: id)
            }
            try store.remove(name: name, versions: [version.version])
            logger.warning("undid a key version whose creation a crash interrupted", metadata: ["key": "\(name)", "version": "\(version.version)"])
        }
        for record in snapshot.purging {
            for version in record.versions {
                try token.destroyAllObjects(of: tokenID(record, version))
            }
            try store.removeKey(name: record.name)
            logger.warning("finished a purge a crash interrupted", metadata: ["key": "\(record.name)"])
        }
        var known = Set<TokenKeyID>()
        for record in snapshot.records {
            for version in record.versions {
                let id = tokenID(record, version)
                known.insert(id)
                token.resolveUnknownSize(id, spec: version.spec)
                if (try? token.key(id)) == nil {
                    logger.error(
                        "a key version's token object is missing: its operations will fail",
                        metadata: ["key": "\(record.name)", "version": "\(version.version)"])
                }
            }
        }
        let strays = token.keys.filter { !known.contains($0.id) }.count
        if strays > 0 {
            logger.warning("token objects shaped like hsmd keys have no metadata; left untouched", metadata: ["count": "\(strays)"])
        }
    }
}

extension KeyVault {
    static func parseOrigin(_ origin: String) -> (String, [UInt8])? {
        let parts = origin.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, parts[1].count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        var index = parts[1].startIndex
        while index < parts[1].endIndex {
            let next = parts[1].index(index, offsetBy: 2)
            guard let byte = UInt8(parts[1][index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return (parts[0], bytes)
    }
}

public struct VaultOpenError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
