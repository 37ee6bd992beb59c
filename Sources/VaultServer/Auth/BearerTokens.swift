import Crypto
import Foundation
import Vault

/// hsmd's bearer tokens: compact JWS (RFC 7515) with ES256, signed by a key that lives in the token
/// and checked on every request against its public half held in memory. A token names a principal
/// (`sub`) and is valid only for hsmd's own audiences, and only between `nbf` and `exp`.
public struct BearerTokens: Sendable {
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    let token: VaultToken
    let publicKey: P256.Signing.PublicKey
    let publicPoint: (x: [UInt8], y: [UInt8])
    /// `iss` of every token: `https://{authority}/{tenant}/v2.0`.
    public let issuer: String
    /// Resources a token may name as `aud`: hsmd's HTTPS authorities.
    public let audiences: [String]
    static let keyID = "hsmd-token-signing"
    static let clockSkew: Int64 = 60

    public init(token: VaultToken, issuer: String, audiences: [String]) throws {
        self.token = token
        self.issuer = issuer
        self.audiences = audiences
        publicPoint = try token.tokenSigningPublicKey()
        publicKey = try P256.Signing.PublicKey(rawRepresentation: publicPoint.x + publicPoint.y)
    }

    /// A token for a principal, valid for `lifetime` seconds from now.
    public func issue(subject: String, audience: String, lifetime: Int64, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> String {
        let header: [String: Any] = ["alg": "ES256", "typ": "JWT", "kid": Self.keyID]
        let claims: [String: Any] = [
            "iss": issuer, "aud": audience, "sub": subject, "iat": now, "nbf": now, "exp": now + lifetime,
            "jti": UUID().uuidString.lowercased(),
        ]
        let signingInput = try Self.segment(header) + "." + Self.segment(claims)
        let digest = Array(SHA256.hash(data: Data(signingInput.utf8)))
        let signature = try token.signWithTokenSigningKey(digest: digest)
        return signingInput + "." + Base64URL.encode(signature)
    }

    /// The principal a valid token names; throws `Invalid` for anything else.
    public func subject(of jwt: String, now: Int64 = Int64(Date().timeIntervalSince1970)) throws(Invalid) -> String {
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerBytes = Base64URL.decode(String(parts[0])),
            let claimBytes = Base64URL.decode(String(parts[1])), let signatureBytes = Base64URL.decode(String(parts[2])),
            let header = try? JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
            let claims = try? JSONSerialization.jsonObject(with: Data(claimBytes)) as? [String: Any]
        else { throw Invalid(description: "the bearer token is not a JWT") }
        guard header["alg"] as? String == "ES256",
            let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signatureBytes),
            publicKey.isValidSignature(signature, for: Data("\(parts[0]).\(parts[1])".utf8))
        else { throw Invalid(description: "the bearer token's signature is not hsmd's") }
        guard claims["iss"] as? String == issuer else { throw Invalid(description: "the bearer token was issued by someone else") }
        let audience = (claims["aud"] as? String).map { [$0] } ?? (claims["aud"] as? [String] ?? [])
        guard audience.contains(where: { aud in audiences.contains { $0 == aud || $0 + "/" == aud } }) else {
            throw Invalid(description: "the bearer token is for another audience")
        }
        guard let expires = (claims["exp"] as? NSNumber)?.int64Value, now < expires + Self.clockSkew else {
            throw Invalid(description: "the bearer token has expired")
        }
        if let notBefore = (claims["nbf"] as? NSNumber)?.int64Value, now + Self.clockSkew < notBefore {
            throw Invalid(description: "the bearer token is not valid yet")
        }
        guard let subject = claims["sub"] as? String, !subject.isEmpty else {
            throw Invalid(description: "the bearer token names no subject")
        }
        return subject
    }

    /// The signing key as a JWK set, for OpenID clients that check tokens themselves.
    var jwks: [String: Any] {
        ["keys": [["kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": Self.keyID,
                   "x": Base64URL.encode(publicPoint.x), "y": Base64URL.encode(publicPoint.y)]]]
    }

    private static func segment(_ object: [String: Any]) throws -> String {
        Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])))
    }
}
