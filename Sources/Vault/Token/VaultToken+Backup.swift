import CPKCS11
import PKCS11

/// Backups: a version leaves the token only wrapped by the domain key (RFC 5649 key wrap with
/// padding, in the token), and comes back only through it. The backup's other content is
/// authenticated with an HMAC key that itself travels wrapped by the domain key, so a blob from
/// another domain, or one with a changed byte, is refused before anything is restored.
extension VaultToken {
    static let backupMACSize = 32

    public func exportWrapped(_ id: TokenKeyID) throws(TokenKeyError) -> [UInt8] {
        let key = try key(id)
        let domain = try requireDomainKey()
        return try withSession { session in
            try session.wrapKey(Mechanism(CKM_AES_KEY_WRAP_PAD), wrappingKey: domain, key: key.privateHandle)
        }
    }

    /// Unwraps a version from a backup into the token, with a public object made from its public key.
    @discardableResult
    public func importWrapped(
        _ id: TokenKeyID, spec: KeySpec, usage: KeyUsage, wrapped: [UInt8], publicKey: PublicKey?
    ) throws(TokenKeyError) -> TokenKey {
        let domain = try requireDomainKey()
        guard index.withLock({ $0[id] == nil }) else {
            throw .invalidInput("key \(id.name) already has a version \(id.version)")
        }
        let key = try withSession { session in
            try cleaningUpOnFailure(id, session) {
                let mechanism = Mechanism(CKM_AES_KEY_WRAP_PAD)
                switch (spec, publicKey) {
                case (.oct(let bits), _):
                    let handle = try session.unwrapKey(mechanism, unwrappingKey: domain, wrapped: wrapped, template: KeyTemplates.secretKey(id, usage: usage))
                    return TokenKey(id: id, spec: .oct(bits: bits), privateHandle: handle, publicHandle: nil, publicKey: nil, isHMACKey: usage.makesHMACKey)
                case (.rsa, .rsa(let modulus, let exponent)?):
                    let privateHandle = try session.unwrapKey(
                        mechanism, unwrappingKey: domain, wrapped: wrapped,
                        template: [.ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_RSA))]
                            + KeyTemplates.privateKey(id, usage: usage))
                    let publicHandle = try session.createObject(
                        [.ulong(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_RSA)),
                         .bytes(CKA_MODULUS, modulus), .bytes(CKA_PUBLIC_EXPONENT, exponent)] + KeyTemplates.publicKey(id, usage: usage))
                    return try TokenIndexer(session: session).rsaKey(id, privateHandle: privateHandle, publicHandle: publicHandle)
                case (.ec(let curve), .ec(_, let x, let y)?):
                    let ecType: [Attribute] = [.ulong(CKA_KEY_TYPE, CK_ULONG(CKK_EC)), .bytes(CKA_EC_PARAMS, curve.ecParameters)]
                    // The curve comes back with the wrapped PKCS#8 key; naming it again is CKR_ATTRIBUTE_READ_ONLY.
                    let privateHandle = try session.unwrapKey(
                        mechanism, unwrappingKey: domain, wrapped: wrapped,
                        template: [.ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_EC))]
                            + KeyTemplates.privateKey(id, usage: usage))
                    let publicHandle = try session.createObject(
                        [.ulong(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY))] + ecType + KeyTemplates.publicKey(id, usage: usage)
                            + [.bytes(CKA_EC_POINT, PublicKey.ecPointAttribute(x: x, y: y))])
                    return try TokenIndexer(session: session).ecKey(id, curve: curve, privateHandle: privateHandle, publicHandle: publicHandle)
                default:
                    throw TokenKeyError.invalidInput("the backup's public key does not match its key type")
                }
            }
        }
        index.withLock { $0[id] = key }
        return key
    }

    /// Authenticates `data` under a fresh HMAC key made in the token; returns the MAC and the key
    /// wrapped by the domain key.
    public func authenticateForBackup(_ data: [UInt8]) throws(TokenKeyError) -> (wrappedKey: [UInt8], mac: [UInt8]) {
        let domain = try requireDomainKey()
        return try withSession { session in
            let macKey = try session.generateKey(
                Mechanism(CKM_GENERIC_SECRET_KEY_GEN),
                template: [.ulong(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_GENERIC_SECRET)),
                           .ulong(CKA_VALUE_LEN, CK_ULONG(Self.backupMACSize)), .bool(CKA_TOKEN, false),
                           .bool(CKA_SENSITIVE, true), .bool(CKA_EXTRACTABLE, true), .bool(CKA_WRAP_WITH_TRUSTED, true),
                           .bool(CKA_SIGN, true)])
            defer { try? session.destroyObject(macKey) }
            let mac = try session.sign(Mechanism(CKM_SHA256_HMAC), key: macKey, data: data, capacity: Self.backupMACSize)
            let wrappedKey = try session.wrapKey(Mechanism(CKM_AES_KEY_WRAP_PAD), wrappingKey: domain, key: macKey)
            return (wrappedKey, mac)
        }
    }

    /// True only if the MAC key unwraps under this token's domain key and the MAC matches.
    public func verifyBackup(_ data: [UInt8], wrappedKey: [UInt8], mac: [UInt8]) throws(TokenKeyError) -> Bool {
        let domain = try requireDomainKey()
        return try withSession { session in
            let macKey: ObjectHandle
            do {
                macKey = try session.unwrapKey(
                    Mechanism(CKM_AES_KEY_WRAP_PAD), unwrappingKey: domain, wrapped: wrappedKey,
                    template: [.ulong(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_GENERIC_SECRET)),
                               .bool(CKA_TOKEN, false), .bool(CKA_VERIFY, true),
                               // What the domain key's unwrap template imposes; leaving it out is CKR_TEMPLATE_INCONSISTENT.
                               .bool(CKA_SENSITIVE, true), .bool(CKA_WRAP_WITH_TRUSTED, true)])
            } catch {
                return false
            }
            defer { try? session.destroyObject(macKey) }
            return try session.verify(Mechanism(CKM_SHA256_HMAC), key: macKey, data: data, signature: mac)
        }
    }

    private func requireDomainKey() throws(TokenKeyError) -> ObjectHandle {
        guard let domainKey else {
            throw .operationNotPermitted("this token has no hsmd domain key, so it cannot make or restore backups")
        }
        return domainKey
    }
}
