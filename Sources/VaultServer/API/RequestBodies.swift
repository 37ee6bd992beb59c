import Foundation
import Vault

/// The JSON bodies of Azure's keys API, as the REST reference names their fields.
struct AttributesBody: Decodable {
    var enabled: Bool?
    var nbf: Int64?
    var exp: Int64?
    var exportable: Bool?

    var input: AttributeInput { AttributeInput(enabled: enabled, notBefore: nbf, expires: exp, exportable: exportable) }
}

/// Any JSON value; for fields hsmd refuses whatever their content.
struct AnyJSON: Decodable {
    init(from decoder: any Decoder) throws {}
}

struct CreateKeyBody: Decodable {
    var kty: String
    var keySize: Int?
    var publicExponent: Int?
    var keyOps: [String]?
    var attributes: AttributesBody?
    var tags: [String: String]?
    var crv: String?
    var releasePolicy: AnyJSON?

    enum CodingKeys: String, CodingKey {
        case kty, attributes, tags, crv
        case keySize = "key_size", publicExponent = "public_exponent", keyOps = "key_ops", releasePolicy = "release_policy"
    }
}

struct JSONWebKeyBody: Decodable {
    var kty: String?
    var keyOps: [String]?
    var n, e, d, dp, dq, qi, p, q, k: String?
    var keyHSM: String?
    var crv, x, y: String?

    enum CodingKeys: String, CodingKey {
        case kty, n, e, d, dp, dq, qi, p, q, k, crv, x, y
        case keyOps = "key_ops", keyHSM = "key_hsm"
    }
}

struct ImportKeyBody: Decodable {
    var key: JSONWebKeyBody
    var hsm: Bool?
    var attributes: AttributesBody?
    var tags: [String: String]?
    var releasePolicy: AnyJSON?

    enum CodingKeys: String, CodingKey {
        case key, attributes, tags
        case hsm = "Hsm", releasePolicy = "release_policy"
    }
}

struct UpdateKeyBody: Decodable {
    var keyOps: [String]?
    var attributes: AttributesBody?
    var tags: [String: String]?
    var releasePolicy: AnyJSON?

    enum CodingKeys: String, CodingKey {
        case attributes, tags
        case keyOps = "key_ops", releasePolicy = "release_policy"
    }
}

struct KeyOperationBody: Decodable {
    var alg: String
    var value: String
    var iv: String?
    var aad: String?
    var tag: String?
}

struct SignBody: Decodable {
    var alg: String
    var value: String
}

struct VerifyBody: Decodable {
    var alg: String
    var digest: String
    var value: String
}

struct ValueBody: Decodable {
    var value: String
}

struct RandomBytesBody: Decodable {
    var count: Int
}

struct RotationPolicyBody: Decodable {
    struct Attributes: Decodable {
        var expiryTime: String?
    }
    var lifetimeActions: [RotationPolicy.LifetimeAction]?
    var attributes: Attributes?
}
