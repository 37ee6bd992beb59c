import CPKCS11
import PKCS11

/// The token's domain key: the only key that may wrap hsmd's keys out of the token, for backups.
/// Created once, by the SO, at provisioning. Every attribute below closes a path that measured
/// attacks took on SoftHSM2 (see docs/security.md): no decrypt, no copy, no change, no destroy,
/// and whatever it unwraps comes back sensitive and trusted-wrap-only.
enum DomainKey {
    static let label = "hsmd.domain"

    static var template: [Attribute] {
        [
            .ulong(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY)),
            .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_AES)),
            .ulong(CKA_VALUE_LEN, 32),
            .string(CKA_LABEL, label),
            .bool(CKA_TOKEN, true),
            .bool(CKA_PRIVATE, false),
            .bool(CKA_TRUSTED, true),
            .bool(CKA_SENSITIVE, true),
            .bool(CKA_EXTRACTABLE, false),
            .bool(CKA_WRAP, true),
            .bool(CKA_UNWRAP, true),
            .bool(CKA_ENCRYPT, false),
            .bool(CKA_DECRYPT, false),
            .bool(CKA_SIGN, false),
            .bool(CKA_VERIFY, false),
            .bool(CKA_DERIVE, false),
            .bool(CKA_MODIFIABLE, false),
            .bool(CKA_COPYABLE, false),
            .bool(CKA_DESTROYABLE, false),
            .template(hsmd_CKA_UNWRAP_TEMPLATE, [.bool(CKA_SENSITIVE, true), .bool(CKA_WRAP_WITH_TRUSTED, true)]),
        ]
    }

    /// Generates the domain key; the session must be logged in as SO.
    static func create(in session: Session) throws {
        _ = try session.generateKey(Mechanism(CKM_AES_KEY_GEN), template: template)
    }
}
