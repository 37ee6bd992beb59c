import CPKCS11
import PKCS11

/// The key hsmd signs its bearer tokens with: EC P-256 in the token, made on first use, never
/// extractable, labelled with a name no hsmd key can have.
extension VaultToken {
    static let tokenSigningLabel = "hsmd.token-signing"

    /// The signing key's public point (x, y), creating the key if the token has none yet.
    public func tokenSigningPublicKey() throws(TokenKeyError) -> (x: [UInt8], y: [UInt8]) {
        let (_, publicHandle) = try tokenSigningHandles()
        let point = try withSession { try $0.attributeValues(of: publicHandle, [CKA_EC_POINT])[CKA_EC_POINT] ?? [] }
        guard case let .ec(_, x, y)? = PublicKey.ec(curve: .p256, pointAttribute: point) else {
            throw .invalidInput("the token-signing key's public point is unreadable")
        }
        return (x, y)
    }

    /// ECDSA over a SHA-256 digest with the token-signing key: raw r‖s, as JWS's ES256 wants.
    public func signWithTokenSigningKey(digest: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        let (privateHandle, _) = try tokenSigningHandles()
        return try withSession { try $0.sign(Mechanism(CKM_ECDSA), key: privateHandle, data: digest, capacity: 64) }
    }

    private func tokenSigningHandles() throws(TokenKeyError) -> (ObjectHandle, ObjectHandle) {
        try serviceKeyLock.withLock { cached throws(TokenKeyError) in
            if let cached { return cached }
            let handles = try withSession { session -> (ObjectHandle, ObjectHandle) in
                let label = Attribute.string(CKA_LABEL, Self.tokenSigningLabel)
                let privateKeys = try tokenObjects(session, [label, .ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY))])
                let publicKeys = try tokenObjects(session, [label, .ulong(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY))])
                if let privateKey = privateKeys.first, let publicKey = publicKeys.first { return (privateKey, publicKey) }
                let pair = try session.generateKeyPair(
                    Mechanism(CKM_EC_KEY_PAIR_GEN),
                    publicTemplate: [label, .bool(CKA_TOKEN, true), .bool(CKA_PRIVATE, false), .bool(CKA_VERIFY, true),
                                     .bytes(CKA_EC_PARAMS, Curve.p256.ecParameters)],
                    privateTemplate: [label, .bool(CKA_TOKEN, true), .bool(CKA_PRIVATE, true), .bool(CKA_SENSITIVE, true),
                                      .bool(CKA_EXTRACTABLE, false), .bool(CKA_SIGN, true), .bool(CKA_DERIVE, false)])
                return (pair.privateKey, pair.publicKey)
            }
            cached = handles
            return handles
        }
    }
}
