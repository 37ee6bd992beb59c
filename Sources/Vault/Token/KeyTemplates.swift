import CPKCS11
import PKCS11

/// The attribute templates of hsmd's token objects. Private and secret parts are sensitive and
/// leave the token only wrapped by the trusted domain key (see docs/security.md): `EXTRACTABLE`
/// is true so that backups are possible, `WRAP_WITH_TRUSTED` makes every other wrapping key fail.
enum KeyTemplates {
    static func privateKey(_ id: TokenKeyID, usage: KeyUsage) -> [Attribute] {
        identity(id) + protected + [.bool(CKA_PRIVATE, true), .bool(CKA_DERIVE, false)] + privateUsage(usage)
    }

    static func publicKey(_ id: TokenKeyID, usage: KeyUsage) -> [Attribute] {
        identity(id) + [.bool(CKA_PRIVATE, false), .bool(CKA_DERIVE, false)] + publicUsage(usage)
    }

    static func secretKey(_ id: TokenKeyID, usage: KeyUsage) -> [Attribute] {
        identity(id) + protected + [
            .ulong(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CKA_KEY_TYPE, CK_ULONG(usage.makesHMACKey ? CKK_GENERIC_SECRET : CKK_AES)),
            .bool(CKA_PRIVATE, true),
            .bool(CKA_DERIVE, false),
        ] + secretUsage(usage)
    }

    static func privateUsage(_ usage: KeyUsage) -> [Attribute] {
        [
            .bool(CKA_SIGN, usage.contains(.sign)),
            .bool(CKA_DECRYPT, usage.contains(.decrypt) || usage.contains(.unwrapKey)),
            .bool(CKA_UNWRAP, usage.contains(.unwrapKey)),
        ]
    }

    static func publicUsage(_ usage: KeyUsage) -> [Attribute] {
        [
            .bool(CKA_VERIFY, usage.contains(.verify)),
            .bool(CKA_ENCRYPT, usage.contains(.encrypt) || usage.contains(.wrapKey)),
            .bool(CKA_WRAP, usage.contains(.wrapKey)),
        ]
    }

    static func secretUsage(_ usage: KeyUsage) -> [Attribute] {
        [
            .bool(CKA_ENCRYPT, usage.contains(.encrypt)),
            .bool(CKA_DECRYPT, usage.contains(.decrypt)),
            .bool(CKA_WRAP, usage.contains(.wrapKey)),
            .bool(CKA_UNWRAP, usage.contains(.unwrapKey)),
            .bool(CKA_SIGN, usage.contains(.sign)),
            .bool(CKA_VERIFY, usage.contains(.verify)),
        ]
    }

    /// A short-lived, in-process secret holding caller-supplied key bytes, so that the token's
    /// C_WrapKey can wrap them (AES key wrap works only through C_WrapKey in SoftHSM2).
    static func transientSecret(value: [UInt8]) -> [Attribute] {
        [
            .ulong(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_GENERIC_SECRET)),
            .bool(CKA_TOKEN, false),
            .bool(CKA_PRIVATE, true),
            .bool(CKA_SENSITIVE, false),
            .bool(CKA_EXTRACTABLE, true),
            .bytes(CKA_VALUE, value),
        ]
    }

    /// Where an unwrap lands: a session object whose value hsmd reads once and destroys.
    static let transientUnwrapTarget: [Attribute] = [
        .ulong(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY)),
        .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_GENERIC_SECRET)),
        .bool(CKA_TOKEN, false),
        .bool(CKA_PRIVATE, true),
        .bool(CKA_SENSITIVE, false),
        .bool(CKA_EXTRACTABLE, true),
    ]

    private static func identity(_ id: TokenKeyID) -> [Attribute] {
        [.bool(CKA_TOKEN, true), .bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)]
    }

    private static let protected: [Attribute] = [
        .bool(CKA_SENSITIVE, true),
        .bool(CKA_EXTRACTABLE, true),
        .bool(CKA_WRAP_WITH_TRUSTED, true),
    ]
}
