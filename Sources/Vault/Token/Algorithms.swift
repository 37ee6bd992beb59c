/// Azure's signature algorithms (`alg` of sign and verify).
public enum SignatureAlgorithm: String, CaseIterable, Sendable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es256k = "ES256K", es384 = "ES384", es512 = "ES512"
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"

    var hash: HashAlgorithm {
        switch self {
        case .rs256, .ps256, .es256, .es256k, .hs256: .sha256
        case .rs384, .ps384, .es384, .hs384: .sha384
        case .rs512, .ps512, .es512, .hs512: .sha512
        }
    }

    /// The curve an ES* algorithm belongs to (RFC 7518 §3.4, RFC 8812 for ES256K).
    var curve: Curve? {
        switch self {
        case .es256: .p256
        case .es256k: .p256k
        case .es384: .p384
        case .es512: .p521
        default: nil
        }
    }
}

/// Azure's encryption algorithms (`alg` of encrypt and decrypt).
public enum EncryptionAlgorithm: String, CaseIterable, Sendable {
    case rsa1_5 = "RSA1_5", rsaOAEP = "RSA-OAEP", rsaOAEP256 = "RSA-OAEP-256"
    case a128GCM = "A128GCM", a192GCM = "A192GCM", a256GCM = "A256GCM"
    case a128CBC = "A128CBC", a192CBC = "A192CBC", a256CBC = "A256CBC"
    case a128CBCPAD = "A128CBCPAD", a192CBCPAD = "A192CBCPAD", a256CBCPAD = "A256CBCPAD"

    enum Mode { case rsa(RSAPadding), gcm, cbc, cbcPad }

    var mode: Mode {
        switch self {
        case .rsa1_5: .rsa(.pkcs1v15)
        case .rsaOAEP: .rsa(.oaepSHA1)
        case .rsaOAEP256: .rsa(.oaepSHA256)
        case .a128GCM, .a192GCM, .a256GCM: .gcm
        case .a128CBC, .a192CBC, .a256CBC: .cbc
        case .a128CBCPAD, .a192CBCPAD, .a256CBCPAD: .cbcPad
        }
    }

    /// The AES key size the algorithm's name promises.
    var aesBits: Int? {
        switch self {
        case .a128GCM, .a128CBC, .a128CBCPAD: 128
        case .a192GCM, .a192CBC, .a192CBCPAD: 192
        case .a256GCM, .a256CBC, .a256CBCPAD: 256
        default: nil
        }
    }
}

/// Azure's key-wrap algorithms (`alg` of wrapKey and unwrapKey).
public enum WrapAlgorithm: String, CaseIterable, Sendable {
    case rsa1_5 = "RSA1_5", rsaOAEP = "RSA-OAEP", rsaOAEP256 = "RSA-OAEP-256"
    case a128KW = "A128KW", a192KW = "A192KW", a256KW = "A256KW"
    case aesKeyWrap = "CKM_AES_KEY_WRAP", aesKeyWrapPad = "CKM_AES_KEY_WRAP_PAD"

    var rsaPadding: RSAPadding? {
        switch self {
        case .rsa1_5: .pkcs1v15
        case .rsaOAEP: .oaepSHA1
        case .rsaOAEP256: .oaepSHA256
        default: nil
        }
    }

    /// The AES key size the name promises; nil for the CKM_* names, which take any AES key.
    var aesBits: Int? {
        switch self {
        case .a128KW: 128
        case .a192KW: 192
        case .a256KW: 256
        default: nil
        }
    }
}

enum RSAPadding {
    case pkcs1v15, oaepSHA1, oaepSHA256

    /// The longest message the padding leaves room for in a modulus of `k` bytes (RFC 8017 §7).
    func maximumMessageLength(modulusSize k: Int) -> Int {
        switch self {
        case .pkcs1v15: k - 11
        case .oaepSHA1: k - 2 * 20 - 2
        case .oaepSHA256: k - 2 * 32 - 2
        }
    }
}

/// What encryption returns: AES-GCM adds the nonce hsmd chose and the tag.
public struct Ciphertext: Sendable {
    public let value: [UInt8]
    public let iv: [UInt8]?
    public let tag: [UInt8]?
}
