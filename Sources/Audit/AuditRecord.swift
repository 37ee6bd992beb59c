import Crypto
import Foundation

/// One audited request. Holds who, what, on which key, and the outcome — never digests,
/// plaintexts, ciphertexts, signatures or key material.
public struct AuditRecord: Codable, Sendable, Equatable {
    /// A socket caller carries its uid, gid and pid; a bearer-token caller only its name.
    public struct Caller: Codable, Sendable, Equatable {
        public var name: String
        public var uid: UInt32?
        public var gid: UInt32?
        public var pid: Int32?

        public init(name: String, uid: UInt32?, gid: UInt32?, pid: Int32?) {
            (self.name, self.uid, self.gid, self.pid) = (name, uid, gid, pid)
        }
    }

    public var seq: UInt64 = 0
    public var time: String
    public var requestID: String
    public var principal: Caller
    public var method: String
    public var path: String
    public var operation: String
    public var action: String?
    public var key: String?
    public var version: String?
    public var status: Int
    public var latencyMicroseconds: Int
    /// The hash of the line before (64 zeros for the first line ever).
    public var previous: String = ""
    /// SHA-256 over `previous` and this record without `hash`.
    public var hash: String = ""

    public init(
        time: String, requestID: String, principal: Caller, method: String, path: String, operation: String,
        action: String?, key: String?, version: String?, status: Int, latencyMicroseconds: Int
    ) {
        (self.time, self.requestID, self.principal, self.method, self.path, self.operation) =
            (time, requestID, principal, method, path, operation)
        (self.action, self.key, self.version, self.status, self.latencyMicroseconds) = (action, key, version, status, latencyMicroseconds)
    }

    enum CodingKeys: String, CodingKey {
        case seq, time, principal, method, path, operation, action, key, version, status, previous, hash
        case requestID = "request_id", latencyMicroseconds = "latency_us"
    }

    public static let genesis = String(repeating: "0", count: 64)

    /// This record's hash, computed over everything but the hash itself.
    public func computedHash() -> String {
        var unhashed = self
        unhashed.hash = ""
        let digest = SHA256.hash(data: Self.line(unhashed))
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The record as one line of JSON, keys sorted (the canonical form the hash covers).
    static func line(_ record: AuditRecord) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings and integers cannot fail.
        return try! encoder.encode(record)
    }
}
