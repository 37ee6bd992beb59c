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
        return Self.hexDigest(Self.line(unhashed))
    }

    /// The record as one line of JSON, keys sorted (the canonical form the hash covers).
    static func line(_ record: AuditRecord) -> Data {
        line(record, lineEncoder())
    }

    static func line(_ record: AuditRecord, _ encoder: JSONEncoder) -> Data {
        // Encoding strings and integers cannot fail.
        try! encoder.encode(record)
    }

    static func lineEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The line to write for this record, `hash` computed, and that hash: one encoding instead of
    /// two. The canonical form (hash empty) differs from the final line only in the hash's value;
    /// with sorted keys `"hash":""` comes first or right after `action`, and inside a string value
    /// every quote is escaped, so its first occurrence is the field.
    func chainedLine(_ encoder: JSONEncoder) -> (bytes: Data, hash: String) {
        var unhashed = self
        unhashed.hash = ""
        let canonical = Self.line(unhashed, encoder)
        let hash = Self.hexDigest(canonical)
        guard let field = canonical.range(of: Self.emptyHashField) else {
            preconditionFailure("an encoded audit record has no hash field")
        }
        var bytes = canonical
        bytes.replaceSubrange(field, with: Data("\"hash\":\"\(hash)\"".utf8))
        return (bytes, hash)
    }

    private static let emptyHashField = Data("\"hash\":\"\"".utf8)

    private static func hexDigest(_ data: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: data) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
