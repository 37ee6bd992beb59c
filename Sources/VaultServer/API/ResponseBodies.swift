import Vault

/// The JSON that the keys API answers with. Only public key parts ever appear here.
struct JSONWebKeyJSON: Encodable {
    var kid: String
    var kty: String
    var keyOps: [String]
    var n, e, crv, x, y: String?

    enum CodingKeys: String, CodingKey {
        case kid, kty, n, e, crv, x, y
        case keyOps = "key_ops"
    }
}

struct KeyAttributesJSON: Encodable {
    var enabled: Bool
    var nbf: Int64?
    var exp: Int64?
    var created: Int64
    var updated: Int64
    var recoverableDays: Int
    var recoveryLevel: String
    var exportable: Bool
    var hsmPlatform: String?
}

struct KeyBundleJSON: Encodable {
    var key: JSONWebKeyJSON
    var attributes: KeyAttributesJSON
    var tags: [String: String]?
    var managed: Bool?
    var recoveryId: String?
    var deletedDate: Int64?
    var scheduledPurgeDate: Int64?
}

struct KeyItemJSON: Encodable {
    var kid: String
    var attributes: KeyAttributesJSON
    var tags: [String: String]?
    var managed: Bool?
    var recoveryId: String?
    var deletedDate: Int64?
    var scheduledPurgeDate: Int64?
}

struct ListJSON<Item: Encodable>: Encodable {
    var value: [Item]
    var nextLink: String?

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(value, forKey: .value)
        // Azure sends an explicit null on the last page.
        try container.encode(nextLink, forKey: .nextLink)
    }

    enum CodingKeys: String, CodingKey { case value, nextLink }
}

struct KeyOperationResultJSON: Encodable {
    var kid: String
    var value: String
    var iv: String?
    var tag: String?
    var aad: String?
}

struct VerifyResultJSON: Encodable {
    var value: Bool
}

struct ValueJSON: Encodable {
    var value: String
}

struct RotationPolicyJSON: Encodable {
    struct Attributes: Encodable {
        var expiryTime: String?
        var created: Int64?
        var updated: Int64?
    }
    var id: String
    var lifetimeActions: [RotationPolicy.LifetimeAction]
    var attributes: Attributes
}

/// Turns vault values into the API's JSON for one request: its api-version and the authority
/// that kids and links are written on.
struct Renderer {
    let authority: String
    let apiVersion: APIVersion
    let settings: VaultSettings

    func kid(_ bundle: KeyBundle, versioned: Bool = true) -> String {
        versioned ? "\(authority)/keys/\(bundle.name)/\(bundle.version.version)" : "\(authority)/keys/\(bundle.name)"
    }

    func attributes(_ version: KeyVersion) -> KeyAttributesJSON {
        KeyAttributesJSON(
            enabled: version.attributes.enabled, nbf: version.attributes.notBefore, exp: version.attributes.expires,
            created: version.attributes.created, updated: version.attributes.updated, recoverableDays: settings.retentionDays,
            recoveryLevel: settings.recoveryLevel, exportable: false, hsmPlatform: apiVersion >= .v7_5 ? "2" : nil)
    }

    func bundle(_ bundle: KeyBundle) -> KeyBundleJSON {
        let version = bundle.version
        var key = JSONWebKeyJSON(kid: kid(bundle), kty: version.type.rawValue, keyOps: version.operations.azureNames)
        switch version.publicKey {
        case let .rsa(modulus, exponent)?:
            key.n = Base64URL.encode(modulus)
            key.e = Base64URL.encode(exponent)
        case let .ec(curve, x, y)?:
            key.crv = curve.rawValue
            key.x = Base64URL.encode(x)
            key.y = Base64URL.encode(y)
        case nil:
            break
        }
        return KeyBundleJSON(
            key: key, attributes: attributes(version), tags: version.tags.isEmpty ? nil : version.tags, managed: nil,
            recoveryId: bundle.deletion.map { _ in recoveryID(bundle.name) }, deletedDate: bundle.deletion?.deletedDate,
            scheduledPurgeDate: bundle.deletion?.scheduledPurgeDate)
    }

    func item(_ bundle: KeyBundle, versioned: Bool) -> KeyItemJSON {
        KeyItemJSON(
            kid: kid(bundle, versioned: versioned), attributes: attributes(bundle.version),
            tags: bundle.version.tags.isEmpty ? nil : bundle.version.tags, managed: nil,
            recoveryId: bundle.deletion.map { _ in recoveryID(bundle.name) }, deletedDate: bundle.deletion?.deletedDate,
            scheduledPurgeDate: bundle.deletion?.scheduledPurgeDate)
    }

    func recoveryID(_ name: String) -> String { "\(authority)/deletedkeys/\(name)" }

    func policy(_ name: String, _ policy: RotationPolicy?) -> RotationPolicyJSON {
        RotationPolicyJSON(
            id: "\(authority)/keys/\(name)/rotationpolicy", lifetimeActions: policy?.lifetimeActions ?? [],
            attributes: .init(expiryTime: policy?.expiryTime, created: policy?.created, updated: policy?.updated))
    }

    /// The absolute link to the next page, on hsmd's own authority (the SDKs follow it as given).
    func nextLink(_ path: String, token: String?, maxResults: Int) -> String? {
        guard let token else { return nil }
        return "\(authority)\(path)?api-version=\(apiVersion.rawValue)&$skiptoken=\(Base64URL.encode(Array(token.utf8)))&maxresults=\(maxResults)"
    }
}
