import CPKCS11
import PKCS11

extension VaultToken {
    /// Wraps caller-supplied key bytes. RSA algorithms encrypt them with the public key; AES key
    /// wrap runs in the token through C_WrapKey on a short-lived session object.
    public func wrap(_ id: TokenKeyID, algorithm: WrapAlgorithm, keyBytes: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        try usingKey(id) { key throws(TokenKeyError) in
            let name = algorithm.rawValue
            if let padding = algorithm.rsaPadding {
                return try rsaEncrypt(key, padding: padding, name: name, message: keyBytes)
            }
            try Self.requireAES(key, bits: algorithm.aesBits, name: name)
            let mechanism = try Self.keyWrapMechanism(algorithm, length: keyBytes.count)
            return try withSession { session in
                let transient = try session.createObject(KeyTemplates.transientSecret(value: keyBytes))
                defer { try? session.destroyObject(transient) }
                return try session.wrapKey(mechanism, wrappingKey: key.privateHandle, key: transient)
            }
        }
    }

    /// Unwraps to the original key bytes. A wrong key or a tampered blob is `decryptionFailed`.
    public func unwrap(_ id: TokenKeyID, algorithm: WrapAlgorithm, wrapped: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        try usingKey(id) { key throws(TokenKeyError) in
            let name = algorithm.rawValue
            if let padding = algorithm.rsaPadding {
                return try rsaDecrypt(key, padding: padding, name: name, ciphertext: wrapped)
            }
            try Self.requireAES(key, bits: algorithm.aesBits, name: name)
            guard wrapped.count >= 16, wrapped.count % 8 == 0 else {
                throw .invalidInput("\(name) wrapped data must be a multiple of 8 bytes and at least 16; it has \(wrapped.count)")
            }
            let mechanism = Mechanism(algorithm == .aesKeyWrapPad ? CKM_AES_KEY_WRAP_PAD : CKM_AES_KEY_WRAP)
            return try decryptingUniformly {
                try withSession { session in
                    let transient = try session.unwrapKey(
                        mechanism, unwrappingKey: key.privateHandle, wrapped: wrapped,
                        template: KeyTemplates.transientUnwrapTarget)
                    defer { try? session.destroyObject(transient) }
                    return try session.attributeValues(of: transient, [CKA_VALUE])[CKA_VALUE] ?? []
                }
            }
        }
    }

    private static func keyWrapMechanism(_ algorithm: WrapAlgorithm, length: Int) throws(TokenKeyError) -> Mechanism {
        let name = algorithm.rawValue
        if algorithm == .aesKeyWrapPad {
            guard length > 0, length % 8 == 0 else {
                throw .invalidInput("\(name) in hsmd wraps a multiple of 8 bytes; the value has \(length)")
            }
            return Mechanism(CKM_AES_KEY_WRAP_PAD)
        }
        guard length >= 16, length % 8 == 0 else {
            throw .invalidInput("\(name) wraps a multiple of 8 bytes, at least 16; the value has \(length)")
        }
        return Mechanism(CKM_AES_KEY_WRAP)
    }
}
