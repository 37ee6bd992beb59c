import Foundation
import NIOHTTP1
import Vault

/// What HTTPS callers need to get and use tokens: the bearer-token service, OAuth2 clients, the
/// tenant the challenge names, and the CA that signed hsmd's certificate.
public struct IdentityServices: Sendable {
    public let tokens: BearerTokens
    public let clients: ClientRegistry
    public let tenant: String
    public let caCertificatePEM: String

    public init(tokens: BearerTokens, clients: ClientRegistry, tenant: String, caCertificatePEM: String) {
        (self.tokens, self.clients, self.tenant, self.caCertificatePEM) = (tokens, clients, tenant, caCertificatePEM)
    }
}

/// The Entra-like surface azure-identity talks to (OAuth2 client credentials, OpenID metadata, keys,
/// instance discovery), and hsmd's own administration of clients and tokens.
extension VaultAPI {
    static let maximumTokenLifetime: Int64 = 24 * 3600

    func registerIdentityRoutes(in router: inout Router) {
        router.add(.POST, "/{tenant}/oauth2/v2.0/token", public: true, .blocking { request in tokenResponse(request) })
        router.add(.GET, "/{tenant}/v2.0/.well-known/openid-configuration", public: true, .immediate { request in
            guard let identity, let base = request.authority ?? identity.tokens.audiences.first else { return Self.httpsOff }
            let tenant = request.parameters["tenant"] ?? identity.tenant
            return .json([
                "issuer": identity.tokens.issuer,
                "token_endpoint": "\(base)/\(tenant)/oauth2/v2.0/token",
                "authorization_endpoint": "\(base)/\(tenant)/oauth2/v2.0/authorize",
                "jwks_uri": "\(base)/\(tenant)/discovery/v2.0/keys",
                "tenant_region_scope": "hsmd",
            ] as [String: String])
        })
        router.add(.GET, "/{tenant}/discovery/v2.0/keys", public: true, .immediate { _ in
            guard let identity else { return Self.httpsOff }
            return Response(status: .ok, body: Array((try? JSONSerialization.data(withJSONObject: identity.tokens.jwks)) ?? Data()))
        })
        router.add(.GET, "/common/discovery/instance", public: true, .immediate { request in
            guard let identity, let base = request.authority ?? identity.tokens.audiences.first else { return Self.httpsOff }
            return .json(InstanceDiscovery(
                tenant_discovery_endpoint: "\(base)/\(identity.tenant)/v2.0/.well-known/openid-configuration",
                api_version: "1.1", metadata: []))
        })
        // The CA certificate is public: whoever may connect may read it.
        router.add(.GET, "/hsmd/ca", .immediate { _ in
            guard let identity else { return Self.httpsOff }
            var response = Response(status: .ok, body: Array(identity.caCertificatePEM.utf8))
            response.headers.add(name: "content-type", value: "application/x-pem-file")
            return response
        })
        router.add(.POST, "/hsmd/tokens", api("hsmd.issue-token", .roleAssignmentsWrite, .root) { request, _ in
            let body = try decode(TokenRequestBody.self, request)
            guard !body.principal.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw VaultError.badParameter("principal must name a caller (uid:N, gid:N or a bound name), not be empty")
            }
            let lifetime = Int64(body.ttlSeconds ?? 3600)
            guard (60...Self.maximumTokenLifetime).contains(lifetime) else {
                throw VaultError.badParameter("ttlSeconds must be 60 to \(Self.maximumTokenLifetime)")
            }
            guard let identity, let audience = body.audience ?? identity.tokens.audiences.first else { throw VaultError.badParameter("HTTPS is off") }
            guard identity.tokens.audiences.contains(audience) else {
                throw VaultError.badParameter("audience must be one of \(identity.tokens.audiences.joined(separator: ", "))")
            }
            let jwt = try inToken { try identity.tokens.issue(subject: body.principal, audience: audience, lifetime: lifetime) }
            return .json(IssuedToken(access_token: jwt, token_type: "Bearer", expires_in: lifetime, audience: audience), status: .created)
        })
        router.add(.POST, "/hsmd/clients", api("hsmd.add-client", .roleAssignmentsWrite, .root) { request, _ in
            let body = try decode(ClientRequestBody.self, request)
            guard let identity else { throw VaultError.badParameter("HTTPS is off") }
            let (client, secret) = try identity.clients.register(principal: body.principal, randomBytes: try vault.randomBytes(count: 48))
            return .json(RegisteredClient(clientId: client.id, clientSecret: secret, principal: client.principal, tenant: identity.tenant), status: .created)
        })
        router.add(.GET, "/hsmd/clients", api("hsmd.list-clients", .roleAssignmentsRead, .root) { _, _ in
            .json(ListJSON(
                value: (identity?.clients.all ?? []).map { RegisteredClient(clientId: $0.id, clientSecret: nil, principal: $0.principal, tenant: identity?.tenant ?? "") },
                nextLink: nil))
        })
        router.add(.DELETE, "/hsmd/clients/{client}", api("hsmd.remove-client", .roleAssignmentsDelete, .root) { request, _ in
            try identity?.clients.remove(request.parameters["client"] ?? "")
            return Response(status: .noContent)
        })
    }

    static let httpsOff = Response.error(.notFound, code: "NotFound", message: "HTTPS is off: start hsmd with --tls-port")

    /// OAuth2 client credentials (RFC 6749 §4.4): a form with client_id, client_secret and scope.
    private func tokenResponse(_ request: Request) -> Response {
        guard let identity else { return Self.httpsOff }
        func oauthError(_ code: String, _ description: String, _ status: HTTPResponseStatus = .badRequest) -> Response {
            .json(["error": code, "error_description": description], status: status)
        }
        guard Self.isWellFormedForm(request) else {
            return oauthError("invalid_request", "the body must be an application/x-www-form-urlencoded form (RFC 6749 §4.4.2)")
        }
        let form = Self.form(request)
        guard form["grant_type"] == "client_credentials" else {
            return oauthError("unsupported_grant_type", "hsmd issues tokens for grant_type=client_credentials only")
        }
        guard let id = form["client_id"], let secret = form["client_secret"], let principal = identity.clients.authenticate(id: id, secret: secret) else {
            return oauthError("invalid_client", "unknown client_id or wrong client_secret", .unauthorized)
        }
        let resource = (form["scope"] ?? "").split(separator: " ").first.map { String($0) }
            .map { $0.hasSuffix("/.default") ? String($0.dropLast("/.default".count)) : $0 }
        guard let audience = identity.tokens.audiences.first(where: { $0 == resource || $0 + "/" == resource }) else {
            return oauthError("invalid_scope", "scope must be <hsmd's HTTPS authority>/.default, one of \(identity.tokens.audiences.joined(separator: ", "))")
        }
        let lifetime: Int64 = 3600
        guard let jwt = try? identity.tokens.issue(subject: principal, audience: audience, lifetime: lifetime) else {
            return oauthError("temporarily_unavailable", "hsmd could not sign a token", .serviceUnavailable)
        }
        var response = Response.json(["token_type": "Bearer", "access_token": jwt, "expires_in": "\(lifetime)", "ext_expires_in": "\(lifetime)"])
        response.audit = AuditFacts(operation: "oauth.token", action: nil, key: nil, version: nil)
        return response
    }

    /// Only the characters a form encoder produces, and every `%` followed by two hex digits.
    private static func isWellFormedForm(_ request: Request) -> Bool {
        guard let body = request.body else { return true }
        let bytes = Array(body.readableBytesView)
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "*"),
                UInt8(ascii: "+"), UInt8(ascii: "&"), UInt8(ascii: "="):
                continue
            case UInt8(ascii: "%"):
                guard index + 2 < bytes.count, bytes[index + 1...index + 2].allSatisfy({ $0.isHexDigit })
                else { return false }
            default:
                return false
            }
        }
        return true
    }

    private static func form(_ request: Request) -> [String: String] {
        guard let body = request.body else { return [:] }
        // Parsed by hand: Foundation's URLComponents traps on a body that is not a valid query.
        return Request.parseFields(Substring(String(decoding: body.readableBytesView, as: UTF8.self)), plusIsSpace: true)
    }

    private func inToken<R>(_ body: () throws -> R) throws(VaultError) -> R {
        do { return try body() } catch { throw .internalFailure("\(error)") }
    }
}

struct TokenRequestBody: Decodable {
    var principal: String
    var ttlSeconds: Int?
    var audience: String?
}

struct ClientRequestBody: Decodable {
    var principal: String
}

struct IssuedToken: Encodable {
    var access_token: String
    var token_type: String
    var expires_in: Int64
    var audience: String
}

struct RegisteredClient: Encodable {
    var clientId: String
    var clientSecret: String?
    var principal: String
    var tenant: String
}

struct InstanceDiscovery: Encodable {
    var tenant_discovery_endpoint: String
    var api_version: String
    var metadata: [String]
}

private extension UInt8 {
    var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self | 0x20)
    }
}
