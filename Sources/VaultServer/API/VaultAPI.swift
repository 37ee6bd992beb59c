import Foundation
import Logging
import NIOHTTP1
import Vault

/// Managed HSM's data-plane API (docs/api.md) over the vault core: the keys API and local RBAC.
/// Each route names its data action and scope; the caller is authorised before anything is looked
/// up, then the route decodes its body, calls the vault on the blocking pool, and renders the result.
/// Every failure becomes Azure's error shape in `errorResponse`.
public struct VaultAPI: Sendable {
    let vault: KeyVault
    let access: AccessControl
    /// Bearer tokens, OAuth2 clients and the CA, when HTTPS is on.
    let identity: IdentityServices?
    /// Where kids, recovery ids and next links point for socket callers, e.g. `https://localhost`;
    /// HTTPS callers get the authority they came in on.
    let authority: String
    let logger: Logger

    public init(vault: KeyVault, access: AccessControl, identity: IdentityServices?, authority: String, logger: Logger) {
        self.vault = vault
        self.access = access
        self.identity = identity
        self.authority = authority.hasSuffix("/") ? String(authority.dropLast()) : authority
        self.logger = logger
    }

    public func register(in router: inout Router) {
        registerKeyRoutes(in: &router)
        registerDeletedKeyRoutes(in: &router)
        registerCryptoRoutes(in: &router)
        registerRoleRoutes(in: &router)
        registerIdentityRoutes(in: &router)
        registerTokenRoutes(in: &router)
    }

    /// What a route's data action applies to.
    enum Scope {
        case root, keys, key
        /// The scope named in the path of an RBAC route (`/`, `/keys` or `/keys/{name}`).
        case roleScope

        func resolve(_ request: Request) -> String {
            switch self {
            case .root: RoleScope.root
            case .keys: RoleScope.keys
            case .key: RoleScope.key(request.parameters["name"] ?? "")
            case .roleScope: request.parameters["name"].map(RoleScope.key) ?? (request.path.lowercased().hasPrefix("/keys/") ? RoleScope.keys : RoleScope.root)
            }
        }
    }

    /// Wraps a route: checks api-version, authorises the caller, runs it, maps errors, and leaves
    /// the facts the audit log records.
    func api(
        _ operation: String, _ action: DataAction, _ scope: Scope,
        _ body: @escaping @Sendable (Request, Renderer) throws -> Response
    ) -> RouteHandler {
        .blocking { request in
            var response: Response
            do {
                let version = try apiVersion(request)
                // A %2F in the path would make a name (and so an RBAC scope) of more than one segment.
                if let name = request.parameters["name"], name.contains("/") {
                    throw VaultError.badParameter("a key name cannot contain '/' (%2F in the path)")
                }
                guard let principal = access.principal(request) else { throw VaultError.unauthenticated }
                try access.authorize(principal, action, scope: scope.resolve(request))
                response = try body(
                    request, Renderer(authority: request.authority ?? authority, apiVersion: version, settings: vault.settings))
            } catch let error as VaultError {
                response = errorResponse(error, request)
            }
            let key = request.parameters["name"]
            response.audit = AuditFacts(
                operation: operation, action: action.qualifiedName, key: key, version: version(request),
                keyType: key.flatMap { vault.keyType(of: $0)?.rawValue })
            return response
        }
    }

    private func apiVersion(_ request: Request) throws(VaultError) -> APIVersion {
        guard let text = request.query["api-version"], !text.isEmpty else {
            throw .badParameter("api-version is required: pass ?api-version=\(APIVersion.latest.rawValue) (also served: 7.4, 7.5, 7.6)")
        }
        guard let version = APIVersion(rawValue: text) else {
            throw .badParameter(
                "The specified version (\(text.prefix(40))) is not recognized. Consider using the latest supported version (\(APIVersion.latest.rawValue)).")
        }
        return version
    }

    func errorResponse(_ error: VaultError, _ request: Request) -> Response {
        switch error {
        case .badParameter(let message):
            return .error(.badRequest, code: "BadParameter", message: message)
        case .keyNotFound(let message), .deletedKeyNotFound(let message):
            return .error(.notFound, code: "KeyNotFound", message: message)
        case .deletedButRecoverable(let message):
            return .error(.conflict, code: "Conflict", message: message, innerCode: "ObjectIsDeletedButRecoverable")
        case .conflict(let message):
            return .error(.conflict, code: "Conflict", message: message)
        case let .forbidden(innerCode, message):
            return .error(.forbidden, code: "Forbidden", message: message, innerCode: innerCode)
        case .unauthenticated:
            return Response(status: .unauthorized)
        case .forbiddenByRBAC(let message):
            return .error(.forbidden, code: "Forbidden", message: message, innerCode: "ForbiddenByRbac")
        case let .notFound(code, message):
            return .error(.notFound, code: code, message: message)
        case .notSupported(let message):
            return .error(.notImplemented, code: "NotSupported", message: message)
        case .materialMissing(let message):
            logger.error("key material missing from the token", metadata: ["request_id": "\(request.requestID)", "error": "\(message)"])
            return .error(.internalServerError, code: "InternalError", message: message)
        case .unavailable(let message):
            var response = Response.error(.serviceUnavailable, code: "ServiceUnavailable", message: message)
            response.headers.add(name: "retry-after", value: "5")
            return response
        case .internalFailure(let detail):
            logger.error("request failed inside hsmd", metadata: ["request_id": "\(request.requestID)", "error": "\(detail)"])
            return .error(.internalServerError, code: "InternalError",
                          message: "hsmd could not complete the request; the operator's log has the details under request id \(request.requestID)")
        }
    }

    // MARK: Shared decoding

    func decode<Body: Decodable>(_ type: Body.Type, _ request: Request) throws(VaultError) -> Body {
        guard let body = request.body, body.readableBytes > 0 else {
            throw .badParameter("the request needs a JSON body")
        }
        do {
            return try JSONDecoder().decode(Body.self, from: Data(body.readableBytesView))
        } catch let error as DecodingError {
            throw .badParameter(Self.describe(error))
        } catch {
            throw .badParameter("the body is not valid JSON")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            (codingPath + (last.map { [$0] } ?? [])).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case let .keyNotFound(key, context): return "\(path(context.codingPath, key)) is required"
        case let .typeMismatch(type, context):
            return context.codingPath.isEmpty ? "the body must be a JSON object" : "\(path(context.codingPath)) must be \(Self.describe(type))"
        case let .valueNotFound(type, context): return "\(path(context.codingPath)) must be \(Self.describe(type)), not null"
        case let .dataCorrupted(context):
            return context.codingPath.isEmpty ? "the body is not valid JSON" : "\(path(context.codingPath)) is invalid"
        @unknown default: return "the body is not valid"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Bool.Type: "true or false"
        case is [String].Type: "an array of strings"
        default: "an object of the documented shape"
        }
    }

    func bytes(_ text: String, field: String) throws(VaultError) -> [UInt8] {
        guard let bytes = Base64URL.decode(text) else { throw .badParameter("\(field) must be base64url") }
        return bytes
    }

    func optionalBytes(_ text: String?, field: String) throws(VaultError) -> [UInt8]? {
        guard let text else { return nil }
        return try bytes(text, field: field)
    }

    func pageRequest(_ request: Request) throws(VaultError) -> (maxResults: Int, token: String?) {
        var maxResults = 25
        if let text = request.query["maxresults"] {
            guard let value = Int(text), (1...25).contains(value) else {
                throw .badParameter("maxresults must be an integer from 1 to 25; it is '\(text.prefix(20))'")
            }
            maxResults = value
        }
        guard let skip = request.query["$skiptoken"] else { return (maxResults, nil) }
        guard let bytes = Base64URL.decode(skip), let token = String(validating: bytes, as: UTF8.self), !token.isEmpty else {
            throw .badParameter("$skiptoken is not one hsmd issued: follow nextLink as given")
        }
        return (maxResults, token)
    }

    func name(_ request: Request) -> String { request.parameters["name"] ?? "" }



    func version(_ request: Request) -> String? {
        guard let version = request.parameters["version"], !version.isEmpty else { return nil }
        return version
    }
}
