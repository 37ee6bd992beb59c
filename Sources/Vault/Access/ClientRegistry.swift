import Crypto
import Foundation
import GRDB
import Synchronization

/// OAuth2 clients that may get bearer tokens with a secret (client credentials), each acting as one
/// principal. Only a salted SHA-256 of each secret is kept; the secret is shown once, when made.
public final class ClientRegistry: Sendable {
    public struct Client: Sendable, Equatable {
        public let id: String
        public let principal: String
        public let created: Int64
    }

    private struct Stored: Sendable {
        let client: Client
        let salt: [UInt8]
        let hash: [UInt8]
    }

    private let store: MetadataStore
    private let clients: Mutex<[String: Stored]>

    public init(vault: KeyVault) throws {
        store = vault.store
        try store.database.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS clients (
                    client_id TEXT PRIMARY KEY, principal TEXT NOT NULL, salt BLOB NOT NULL, secret_hash BLOB NOT NULL,
                    created INTEGER NOT NULL)
                """)
        }
        let rows = try store.database.read { try Row.fetchAll($0, sql: "SELECT * FROM clients") }
        clients = Mutex(Dictionary(uniqueKeysWithValues: rows.map { row in
            let client = Client(id: row["client_id"], principal: row["principal"], created: row["created"])
            return (client.id, Stored(client: client, salt: Array(row["salt"] as Data), hash: Array(row["secret_hash"] as Data)))
        }))
    }

    public var all: [Client] { clients.withLock { $0.values.map(\.client) }.sorted { $0.id < $1.id } }

    /// Registers a client for a principal; returns it with its secret (never retrievable again).
    public func register(principal: String, randomBytes: [UInt8]) throws(VaultError) -> (Client, secret: String) {
        guard !principal.isEmpty, principal.count <= 256 else { throw .badParameter("principal is required") }
        guard randomBytes.count >= 48 else { throw .internalFailure("not enough random bytes for a client secret") }
        let client = Client(id: UUID().uuidString.lowercased(), principal: principal, created: Int64(Date().timeIntervalSince1970))
        let secret = Data(randomBytes.prefix(32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let salt = Array(randomBytes.suffix(16))
        let stored = Stored(client: client, salt: salt, hash: Self.hash(secret, salt: salt))
        do {
            try store.database.write { db in
                try db.execute(
                    sql: "INSERT INTO clients (client_id, principal, salt, secret_hash, created) VALUES (?, ?, ?, ?, ?)",
                    arguments: [client.id, client.principal, Data(salt), Data(stored.hash), client.created])
            }
        } catch {
            throw .internalFailure("the metadata store could not record a client: \(error)")
        }
        clients.withLock { $0[client.id] = stored }
        return (client, secret)
    }

    public func remove(_ id: String) throws(VaultError) {
        guard clients.withLock({ $0[id.lowercased()] }) != nil else {
            throw .notFound(code: "ClientNotFound", message: "no client \(id.prefix(80)) is registered")
        }
        do {
            try store.database.write { try $0.execute(sql: "DELETE FROM clients WHERE client_id = ?", arguments: [id.lowercased()]) }
        } catch {
            throw .internalFailure("the metadata store could not remove a client: \(error)")
        }
        clients.withLock { _ = $0.removeValue(forKey: id.lowercased()) }
    }

    /// The principal a client acts as, if the secret is its own. Compares in constant time.
    public func authenticate(id: String, secret: String) -> String? {
        guard let stored = clients.withLock({ $0[id.lowercased()] }) else { return nil }
        let candidate = Self.hash(secret, salt: stored.salt)
        let difference = zip(candidate, stored.hash).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) }
        return difference == 0 ? stored.client.principal : nil
    }

    private static func hash(_ secret: String, salt: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: salt + Array(secret.utf8)))
    }
}
