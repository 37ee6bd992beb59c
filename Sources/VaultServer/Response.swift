import Foundation
import NIOCore
import NIOHTTP1

/// What a route answers. Bodies are JSON; errors always have Azure's shape.
public struct Response: Sendable {
    public let status: HTTPResponseStatus
    public let body: [UInt8]
    public var headers: HTTPHeaders = [:]
    /// What the audit log records about the request beyond method, path and status.
    public var audit: AuditFacts?

    public init(status: HTTPResponseStatus, body: [UInt8] = []) {
        self.status = status
        self.body = body
    }

    public static func json<Value: Encodable>(_ value: Value, status: HTTPResponseStatus = .ok) -> Response {
        // Encoding hsmd's own response types cannot fail.
        Response(status: status, body: Array(try! encoder.encode(value)))
    }

    /// Shared by every request: JSONEncoder is Sendable, and its options never change after this.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Azure's error body: `{"error":{"code":…,"message":…,"innererror":{"code":…}}}`.
    public static func error(_ status: HTTPResponseStatus, code: String, message: String, innerCode: String? = nil) -> Response {
        json(ErrorBody(error: .init(code: code, message: message, innererror: innerCode.map { .init(code: $0) })), status: status)
    }

    struct ErrorBody: Encodable {
        struct Inner: Encodable {
            let code: String
        }
        struct Detail: Encodable {
            let code: String
            let message: String
            let innererror: Inner?
        }
        let error: Detail
    }
}

/// The operation a route performed, for the audit log: never a payload.
public struct AuditFacts: Sendable {
    public var operation: String
    public var action: String?
    public var key: String?
    public var version: String?
    /// The type of the key the request concerned (`RSA-HSM`…), for metrics.
    public var keyType: String?

    public init(operation: String, action: String? = nil, key: String? = nil, version: String? = nil, keyType: String? = nil) {
        self.operation = operation
        self.action = action
        self.key = key
        self.version = version
        self.keyType = keyType
    }
}
