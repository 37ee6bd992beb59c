import Foundation
import GRDB

/// What the token cannot hold, in SQLite beside it: names, versions, attributes, tags, deletion
/// state, rotation policies, the vault's settings. Every write is one transaction with
/// `synchronous=FULL`: once a call returns, the change survives a crash or power loss.
///
/// A version row is written `pending` before its token object exists and becomes `active` after;
/// a purge marks the key `purging` before destroying objects. Start-up finishes or undoes what a
/// crash interrupted (see `KeyVault.reconcile`).
final class MetadataStore: Sendable {
    let database: DatabaseQueue

    /// The directory of the database file, where SQLite also keeps its journal.
    private let directory: URL

    init(path: URL) throws {
        directory = path.deletingLastPathComponent()
        var configuration = Configuration()
        // A backup tool or an operator's sqlite3 may hold the lock for a moment: wait rather than fail.
        configuration.busyMode = .timeout(2)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        database = try DatabaseQueue(path: path.path, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE keys (
                    name_key TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    deleted_date INTEGER,
                    scheduled_purge_date INTEGER,
                    rotation_policy TEXT,
                    purging INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE versions (
                    name_key TEXT NOT NULL REFERENCES keys(name_key) ON DELETE CASCADE,
                    version TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    kty TEXT NOT NULL,
                    bits INTEGER NOT NULL,
                    curve TEXT,
                    hmac INTEGER NOT NULL,
                    key_ops INTEGER NOT NULL,
                    enabled INTEGER NOT NULL,
                    nbf INTEGER,
                    exp INTEGER,
                    created INTEGER NOT NULL,
                    updated INTEGER NOT NULL,
                    tags TEXT NOT NULL,
                    public_key TEXT,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
                    PRIMARY KEY (name_key, version)
                );
                """)
        }
        migrator.registerMigration("v2-access") { db in
            try db.execute(sql: """
                CREATE TABLE role_definitions (id TEXT PRIMARY KEY, definition TEXT NOT NULL);
                CREATE TABLE role_assignments (
                    name TEXT PRIMARY KEY,
                    scope TEXT NOT NULL,
                    role_definition_id TEXT NOT NULL,
                    principal_id TEXT NOT NULL
                );
                """)
        }
        return migrator
    }

    /// What stops writes when the fault is the environment's, not hsmd's: said in words for the caller.
    func environmentalCondition(_ error: any Error) -> String? {
        guard let error = error as? DatabaseError else { return nil }
        // SQLite reports a read-only filesystem as whatever its first failed open or write was.
        var filesystem = statvfs()
        if statvfs(directory.path, &filesystem) == 0, filesystem.f_flag & UInt(ST_RDONLY) != 0 {
            return "the filesystem holding it is read-only"
        }
        switch error.resultCode {
        case .SQLITE_FULL: return "the disk holding it is full"
        case .SQLITE_BUSY, .SQLITE_LOCKED: return "another process holds its lock"
        case .SQLITE_READONLY: return "it is read-only"
        case .SQLITE_CANTOPEN: return "it cannot be opened"
        case .SQLITE_IOERR: return "the disk reports an I/O error"
        default: return nil
        }
    }

    /// Nil when SQLite's own check finds the file sound; else its first complaint.
    func integrityProblem() throws -> String? {
        let result = try database.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check(1)") }
        return result == "ok" ? nil : result ?? "no answer"
    }

    /// Takes and releases the write lock: fails while the file is unreadable, corrupt or locked by another process.
    func checkWritable() throws {
        try database.inTransaction(.immediate) { db in
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM settings")
            return .commit
        }
    }

    // MARK: Settings

    func settings() throws -> VaultSettings? {
        try database.read { db in
            guard let text = try String.fetchOne(db, sql: "SELECT value FROM settings WHERE name = 'vault'") else { return nil }
            return try JSONDecoder().decode(VaultSettings.self, from: Data(text.utf8))
        }
    }

    func saveSettings(_ settings: VaultSettings) throws {
        let text = String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
        try database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO settings (name, value) VALUES ('vault', ?)", arguments: [text])
        }
    }

    // MARK: Reading everything at start-up

    struct Snapshot {
        var records: [KeyRecord] = []
        /// Versions whose creation a crash interrupted.
        var pending: [(name: String, version: KeyVersion)] = []
        /// Keys whose purge a crash interrupted.
        var purging: [KeyRecord] = []
    }

    func loadAll() throws -> Snapshot {
        try database.read { db in
            var byName: [String: (record: KeyRecord, purging: Bool)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM keys") {
                let nameKey: String = row["name_key"]
                let deletion: Deletion? = (row["deleted_date"] as Int64?).map {
                    Deletion(deletedDate: $0, scheduledPurgeDate: row["scheduled_purge_date"] ?? $0)
                }
                let policy = try (row["rotation_policy"] as String?).map {
                    try JSONDecoder().decode(RotationPolicy.self, from: Data($0.utf8))
                }
                byName[nameKey] = (KeyRecord(name: row["name"], versions: [], deletion: deletion, rotationPolicy: policy), row["purging"])
            }
            var snapshot = Snapshot()
            for row in try Row.fetchAll(db, sql: "SELECT * FROM versions ORDER BY name_key, seq") {
                let nameKey: String = row["name_key"]
                let version = try Self.version(from: row)
                if row["state"] as String == "pending" {
                    snapshot.pending.append((byName[nameKey]?.record.name ?? nameKey, version))
                } else {
                    byName[nameKey]?.record.versions.append(version)
                }
            }
            for (_, entry) in byName {
                if entry.purging {
                    snapshot.purging.append(entry.record)
                } else {
                    snapshot.records.append(entry.record)
                }
            }
            return snapshot
        }
    }

    // MARK: Writes

    /// Records a version about to be created in the token; creates the key row if needed.
    func insertPending(name: String, version: KeyVersion) throws {
        try database.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO keys (name_key, name) VALUES (?, ?)", arguments: [name.lowercased(), name])
            try insert(version, of: name, state: "pending", in: db)
        }
    }

    /// Records all versions of a restored key as pending, with its policy.
    func insertPending(record: KeyRecord) throws {
        try database.write { db in
            try db.execute(
                sql: "INSERT INTO keys (name_key, name, rotation_policy) VALUES (?, ?, ?)",
                arguments: [record.name.lowercased(), record.name, try record.rotationPolicy.map(Self.json)])
            for version in record.versions { try insert(version, of: record.name, state: "pending", in: db) }
        }
    }

    /// Makes a pending version active, with the public key its token object turned out to have.
    func activate(name: String, version: KeyVersion) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE versions SET state = 'active', public_key = ? WHERE name_key = ? AND version = ?",
                arguments: [try version.publicKey.map { try Self.json(StoredPublicKey($0)) }, name.lowercased(), version.version])
        }
    }

    func activate(name: String, versions: [String]) throws {
        try database.write { db in
            for version in versions {
                try db.execute(
                    sql: "UPDATE versions SET state = 'active' WHERE name_key = ? AND version = ?",
                    arguments: [name.lowercased(), version])
            }
        }
    }

    /// Forgets versions; the key row goes too when it has none left.
    func remove(name: String, versions: [String]) throws {
        try database.write { db in
            for version in versions {
                try db.execute(sql: "DELETE FROM versions WHERE name_key = ? AND version = ?", arguments: [name.lowercased(), version])
            }
            try db.execute(
                sql: "DELETE FROM keys WHERE name_key = ? AND NOT EXISTS (SELECT 1 FROM versions WHERE name_key = ?)",
                arguments: [name.lowercased(), name.lowercased()])
        }
    }

    func removeKey(name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM versions WHERE name_key = ?", arguments: [name.lowercased()])
            try db.execute(sql: "DELETE FROM keys WHERE name_key = ?", arguments: [name.lowercased()])
        }
    }

    func update(name: String, version: KeyVersion) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE versions SET key_ops = ?, enabled = ?, nbf = ?, exp = ?, updated = ?, tags = ?
                    WHERE name_key = ? AND version = ?
                    """,
                arguments: [
                    Int(version.operations.rawValue), version.attributes.enabled, version.attributes.notBefore,
                    version.attributes.expires, version.attributes.updated, try Self.json(version.tags),
                    name.lowercased(), version.version,
                ])
        }
    }

    func setDeletion(name: String, _ deletion: Deletion?) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE keys SET deleted_date = ?, scheduled_purge_date = ? WHERE name_key = ?",
                arguments: [deletion?.deletedDate, deletion?.scheduledPurgeDate, name.lowercased()])
        }
    }

    func setRotationPolicy(name: String, _ policy: RotationPolicy?) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE keys SET rotation_policy = ? WHERE name_key = ?",
                arguments: [try policy.map(Self.json), name.lowercased()])
        }
    }

    func markPurging(name: String) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE keys SET purging = 1 WHERE name_key = ?", arguments: [name.lowercased()])
        }
    }

    // MARK: Rows

    private func insert(_ version: KeyVersion, of name: String, state: String, in db: Database) throws {
        let (kty, bits, curve): (String, Int, String?) = switch version.spec {
        case .rsa(let bits): ("rsa", bits, nil)
        case .ec(let curve): ("ec", 0, curve.rawValue)
        case .oct(let bits): ("oct", bits, nil)
        }
        let seq = (try Int.fetchOne(db, sql: "SELECT MAX(seq) FROM versions WHERE name_key = ?", arguments: [name.lowercased()]) ?? 0) + 1
        try db.execute(
            sql: """
                INSERT INTO versions (name_key, version, seq, kty, bits, curve, hmac, key_ops, enabled, nbf, exp,
                                      created, updated, tags, public_key, state)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                name.lowercased(), version.version, seq, kty, bits, curve, version.isHMACKey, Int(version.operations.rawValue),
                version.attributes.enabled, version.attributes.notBefore, version.attributes.expires,
                version.attributes.created, version.attributes.updated, try Self.json(version.tags),
                try version.publicKey.map { try Self.json(StoredPublicKey($0)) }, state,
            ])
    }

    private static func version(from row: Row) throws -> KeyVersion {
        let spec: KeySpec
        switch row["kty"] as String {
        case "rsa": spec = .rsa(bits: row["bits"])
        case "ec":
            guard let curve = Curve(rawValue: row["curve"] ?? "") else { throw StoreCorruption(detail: "unknown curve") }
            spec = .ec(curve)
        case "oct": spec = .oct(bits: row["bits"])
        default: throw StoreCorruption(detail: "unknown key type")
        }
        let tags = try JSONDecoder().decode([String: String].self, from: Data((row["tags"] as String).utf8))
        let publicKey = try (row["public_key"] as String?).flatMap {
            try JSONDecoder().decode(StoredPublicKey.self, from: Data($0.utf8)).publicKey
        }
        return KeyVersion(
            version: row["version"], spec: spec, isHMACKey: row["hmac"], operations: KeyUsage(rawValue: UInt8(row["key_ops"] as Int)),
            attributes: KeyAttributes(enabled: row["enabled"], notBefore: row["nbf"], expires: row["exp"], created: row["created"], updated: row["updated"]),
            tags: tags, publicKey: publicKey)
    }

    private static func json<Value: Encodable>(_ value: Value) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

struct StoreCorruption: Error, CustomStringConvertible {
    let detail: String
    var description: String { "the metadata store is corrupt: \(detail)" }
}

/// A public key as JSON in the store (base64 of the big-endian integers).
struct StoredPublicKey: Codable {
    var n: Data?
    var e: Data?
    var crv: String?
    var x: Data?
    var y: Data?

    init(_ key: PublicKey) {
        switch key {
        case let .rsa(modulus, exponent): (n, e) = (Data(modulus), Data(exponent))
        case let .ec(curve, x, y): (crv, self.x, self.y) = (curve.rawValue, Data(x), Data(y))
        }
    }

    var publicKey: PublicKey? {
        if let n, let e { return .rsa(modulus: Array(n), exponent: Array(e)) }
        if let crv, let curve = Curve(rawValue: crv), let x, let y { return .ec(curve: curve, x: Array(x), y: Array(y)) }
        return nil
    }
}
