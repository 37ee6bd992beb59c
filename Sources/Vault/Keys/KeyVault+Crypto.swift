extension KeyVault {
    /// A version a cryptographic operation may use: listed in its key_ops, enabled, and — for
    /// operations that make something new (sign, encrypt, wrap) — inside its nbf/exp window. Verify,
    /// decrypt and unwrap still work outside the window, as Azure documents.
    func usable(
        _ name: String, _ version: String?, for operation: KeyUsage, _ operationName: String
    ) throws(VaultError) -> (TokenKeyID, KeyVersion) {
        let (record, found) = try activeVersion(name, version)
        guard found.operations.contains(operation) else {
            throw .forbidden(
                innerCode: "KeyOperationForbidden",
                message: "Operation \(operationName) is not allowed by this key's key_ops (\(found.operations.azureNames.joined(separator: ", ")))")
        }
        guard found.attributes.enabled else {
            throw .forbidden(innerCode: "KeyDisabled", message: "Operation \(operationName) is not allowed on a disabled key.")
        }
        if [.sign, .encrypt, .wrapKey].contains(operation) {
            let moment = now()
            if let notBefore = found.attributes.notBefore, moment < notBefore {
                throw .forbidden(innerCode: "KeyNotYetValid", message: "Operation \(operationName) is not allowed before the key's nbf.")
            }
            if let expires = found.attributes.expires, moment >= expires {
                throw .forbidden(innerCode: "KeyExpired", message: "Operation \(operationName) is not allowed on an expired key.")
            }
        }
        return (tokenID(record, found), found)
    }

    public func sign(_ name: String, version: String?, algorithm: SignatureAlgorithm, digest: [UInt8]) throws(VaultError) -> (KeyBundle, [UInt8]) {
        let (id, found) = try usable(name, version, for: .sign, "sign")
        let signature = try inVault { try token.sign(id, algorithm: algorithm, digest: digest) }
        return (KeyBundle(name: id.name, version: found, deletion: nil), signature)
    }

    public func verify(
        _ name: String, version: String?, algorithm: SignatureAlgorithm, digest: [UInt8], signature: [UInt8]
    ) throws(VaultError) -> Bool {
        let (id, _) = try usable(name, version, for: .verify, "verify")
        return try inVault { try token.verify(id, algorithm: algorithm, digest: digest, signature: signature) }
    }

    public func encrypt(
        _ name: String, version: String?, algorithm: EncryptionAlgorithm, plaintext: [UInt8], iv: [UInt8]?, aad: [UInt8]?
    ) throws(VaultError) -> (KeyBundle, Ciphertext) {
        let (id, found) = try usable(name, version, for: .encrypt, "encrypt")
        let ciphertext = try inVault { try token.encrypt(id, algorithm: algorithm, plaintext: plaintext, iv: iv, aad: aad) }
        return (KeyBundle(name: id.name, version: found, deletion: nil), ciphertext)
    }

    public func decrypt(
        _ name: String, version: String?, algorithm: EncryptionAlgorithm, ciphertext: [UInt8], iv: [UInt8]?, aad: [UInt8]?,
        tag: [UInt8]?
    ) throws(VaultError) -> (KeyBundle, [UInt8]) {
        let (id, found) = try usable(name, version, for: .decrypt, "decrypt")
        let plaintext = try inVault {
            try token.decrypt(id, algorithm: algorithm, ciphertext: ciphertext, iv: iv, aad: aad, tag: tag)
        }
        return (KeyBundle(name: id.name, version: found, deletion: nil), plaintext)
    }

    public func wrapKey(_ name: String, version: String?, algorithm: WrapAlgorithm, keyBytes: [UInt8]) throws(VaultError) -> (KeyBundle, [UInt8]) {
        let (id, found) = try usable(name, version, for: .wrapKey, "wrapKey")
        let wrapped = try inVault { try token.wrap(id, algorithm: algorithm, keyBytes: keyBytes) }
        return (KeyBundle(name: id.name, version: found, deletion: nil), wrapped)
    }

    public func unwrapKey(_ name: String, version: String?, algorithm: WrapAlgorithm, wrapped: [UInt8]) throws(VaultError) -> (KeyBundle, [UInt8]) {
        let (id, found) = try usable(name, version, for: .unwrapKey, "unwrapKey")
        let keyBytes = try inVault { try token.unwrap(id, algorithm: algorithm, wrapped: wrapped) }
        return (KeyBundle(name: id.name, version: found, deletion: nil), keyBytes)
    }

    public func randomBytes(count: Int) throws(VaultError) -> [UInt8] {
        guard (1...128).contains(count) else { throw .badParameter("count must be 1 to 128; it is \(count)") }
        return try inVault { try token.randomBytes(count: count) }
    }

    // MARK: Rotation policy

    public func rotationPolicy(_ name: String) throws(VaultError) -> RotationPolicy? {
        try activeRecord(name).rotationPolicy
    }

    public func setRotationPolicy(
        _ name: String, lifetimeActions: [RotationPolicy.LifetimeAction], expiryTime: String?
    ) throws(VaultError) -> RotationPolicy {
        try locks.withLock(name) { () throws(VaultError) -> RotationPolicy in
            var record = try activeRecord(name)
            let moment = now()
            let policy = RotationPolicy(
                lifetimeActions: lifetimeActions, expiryTime: expiryTime,
                created: record.rotationPolicy?.created ?? moment, updated: moment)
            try policy.validate()
            try writing("the rotation policy of \(record.name)") { try store.setRotationPolicy(name: record.name, policy) }
            record.rotationPolicy = policy
            store(record)
            return policy
        }
    }
}
