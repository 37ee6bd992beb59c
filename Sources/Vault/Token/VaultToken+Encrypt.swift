import CPKCS11
import PKCS11

extension VaultToken {
    static let gcmNonceSize = 12
    static let gcmTagSize = 16
    static let aesBlockSize = 16

    /// Encrypts with the key's public part (RSA) or the secret key (AES). For AES-GCM hsmd picks the
    /// nonce and returns it with the tag; CBC takes the caller's 16-byte IV.
    public func encrypt(
        _ id: TokenKeyID, algorithm: EncryptionAlgorithm, plaintext: [UInt8], iv: [UInt8]? = nil, aad: [UInt8]? = nil
    ) throws(TokenKeyError) -> Ciphertext {
        try usingKey(id) { key throws(TokenKeyError) in
            let name = algorithm.rawValue
            switch algorithm.mode {
            case .rsa(let padding):
                try Self.refuseAESParameters(name, iv: iv, aad: aad, tag: nil)
                let value = try rsaEncrypt(key, padding: padding, name: name, message: plaintext)
                return Ciphertext(value: value, iv: nil, tag: nil)
            case .gcm:
                try Self.requireAES(key, bits: algorithm.aesBits, name: name)
                guard iv == nil else {
                    throw .invalidInput("\(name) takes no iv: hsmd generates the nonce and returns it")
                }
                return try withSession { session in
                    let nonce = try session.generateRandom(count: Self.gcmNonceSize)
                    let sealed = try session.encrypt(
                        Mechanism(CKM_AES_GCM, .gcm(iv: nonce, aad: aad ?? [], tagBits: Self.gcmTagSize * 8)),
                        key: key.privateHandle, data: plaintext, capacity: plaintext.count + Self.gcmTagSize)
                    return Ciphertext(
                        value: Array(sealed.dropLast(Self.gcmTagSize)), iv: nonce, tag: Array(sealed.suffix(Self.gcmTagSize)))
                }
            case .cbc, .cbcPad:
                try Self.requireAES(key, bits: algorithm.aesBits, name: name)
                let iv = try Self.requireCBCParameters(name, iv: iv, aad: aad)
                let padded = algorithm.mode.isPadded
                if !padded { try Self.requireWholeBlocks(plaintext, name: name, what: "plaintext") }
                let value = try withSession { session in
                    try session.encrypt(
                        Mechanism(padded ? CKM_AES_CBC_PAD : CKM_AES_CBC, .bytes(iv)), key: key.privateHandle,
                        data: plaintext, capacity: plaintext.count + Self.aesBlockSize)
                }
                return Ciphertext(value: value, iv: iv, tag: nil)
            }
        }
    }

    /// Decrypts inside the token. Any failure of the ciphertext itself (padding, tag, length) is
    /// the one uniform `decryptionFailed`.
    public func decrypt(
        _ id: TokenKeyID, algorithm: EncryptionAlgorithm, ciphertext: [UInt8],
        iv: [UInt8]? = nil, aad: [UInt8]? = nil, tag: [UInt8]? = nil
    ) throws(TokenKeyError) -> [UInt8] {
        try usingKey(id) { key throws(TokenKeyError) in
            let name = algorithm.rawValue
            switch algorithm.mode {
            case .rsa(let padding):
                try Self.refuseAESParameters(name, iv: iv, aad: aad, tag: tag)
                return try rsaDecrypt(key, padding: padding, name: name, ciphertext: ciphertext)
            case .gcm:
                try Self.requireAES(key, bits: algorithm.aesBits, name: name)
                guard let iv, iv.count == Self.gcmNonceSize else {
                    throw .invalidInput("\(name) decryption needs the 12-byte iv that encryption returned")
                }
                guard let tag, tag.count == Self.gcmTagSize else {
                    throw .invalidInput("\(name) decryption needs the 16-byte tag that encryption returned")
                }
                return try decryptingUniformly {
                    try withSession { session in
                        try session.decrypt(
                            Mechanism(CKM_AES_GCM, .gcm(iv: iv, aad: aad ?? [], tagBits: Self.gcmTagSize * 8)),
                            key: key.privateHandle, data: ciphertext + tag, capacity: ciphertext.count + Self.gcmTagSize)
                    }
                }
            case .cbc, .cbcPad:
                try Self.requireAES(key, bits: algorithm.aesBits, name: name)
                let iv = try Self.requireCBCParameters(name, iv: iv, aad: aad)
                guard tag == nil else { throw .invalidInput("tag is only for AES-GCM, not \(name)") }
                try Self.requireWholeBlocks(ciphertext, name: name, what: "ciphertext")
                let padded = algorithm.mode.isPadded
                return try decryptingUniformly {
                    try withSession { session in
                        try session.decrypt(
                            Mechanism(padded ? CKM_AES_CBC_PAD : CKM_AES_CBC, .bytes(iv)), key: key.privateHandle,
                            data: ciphertext, capacity: ciphertext.count)
                    }
                }
            }
        }
    }

    // MARK: RSA, shared with wrap and unwrap

    func rsaEncrypt(_ key: TokenKey, padding: RSAPadding, name: String, message: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        guard case .rsa = key.spec, let publicHandle = key.publicHandle else {
            throw .algorithmMismatch("\(name) needs an RSA key; this key is \(key.spec)")
        }
        let k = key.modulusSize
        let limit = padding.maximumMessageLength(modulusSize: k)
        guard message.count <= limit else {
            throw .invalidInput("\(name) with a \(k * 8)-bit key encrypts at most \(limit) bytes; the value has \(message.count)")
        }
        return try withSession { session in
            switch padding {
            case .pkcs1v15:
                return try session.encrypt(Mechanism(CKM_RSA_PKCS), key: publicHandle, data: message, capacity: k)
            case .oaepSHA1:
                return try session.encrypt(
                    Mechanism(CKM_RSA_PKCS_OAEP, .oaep(hash: CKM_SHA_1, mgf: CKG_MGF1_SHA1)),
                    key: publicHandle, data: message, capacity: k)
            case .oaepSHA256:
                let oaep = OAEPSHA256(session: session)
                let seed = try session.generateRandom(count: OAEPSHA256.hashLength)
                let encoded = try oaep.encode(message, modulusSize: k, seed: seed)
                return try session.encrypt(Mechanism(CKM_RSA_X_509), key: publicHandle, data: encoded, capacity: k)
            }
        }
    }

    func rsaDecrypt(_ key: TokenKey, padding: RSAPadding, name: String, ciphertext: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        guard case .rsa = key.spec else {
            throw .algorithmMismatch("\(name) needs an RSA key; this key is \(key.spec)")
        }
        let k = key.modulusSize
        guard ciphertext.count == k else {
            throw .invalidInput("\(name) with a \(k * 8)-bit key decrypts exactly \(k) bytes; the value has \(ciphertext.count)")
        }
        return try decryptingUniformly {
            try withSession { session in
                switch padding {
                case .pkcs1v15:
                    return try session.decrypt(Mechanism(CKM_RSA_PKCS), key: key.privateHandle, data: ciphertext, capacity: k)
                case .oaepSHA1:
                    return try session.decrypt(
                        Mechanism(CKM_RSA_PKCS_OAEP, .oaep(hash: CKM_SHA_1, mgf: CKG_MGF1_SHA1)),
                        key: key.privateHandle, data: ciphertext, capacity: k)
                case .oaepSHA256:
                    var encoded = try session.decrypt(
                        Mechanism(CKM_RSA_X_509), key: key.privateHandle, data: ciphertext, capacity: k)
                    defer { encoded.zeroize() }
                    guard let message = try OAEPSHA256(session: session).decode(encoded, modulusSize: k) else {
                        throw TokenKeyError.decryptionFailed
                    }
                    return message
                }
            }
        }
    }

    /// Turns the token's verdicts on bad ciphertexts into the one uniform error, keeping errors
    /// that are about the key or the token itself.
    func decryptingUniformly<R>(_ body: () throws -> R) throws(TokenKeyError) -> R {
        do {
            return try body()
        } catch let error as TokenKeyError {
            if case .token(let tokenError) = error, !Self.isKeyOrTokenProblem(tokenError) { throw .decryptionFailed }
            throw error
        } catch let error as P11Error {
            throw Self.isKeyOrTokenProblem(error) ? .token(error) : .decryptionFailed
        } catch {
            throw .decryptionFailed
        }
    }

    private static func isKeyOrTokenProblem(_ error: P11Error) -> Bool {
        [CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT, CKR_SESSION_HANDLE_INVALID,
         CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_ERROR, CKR_DEVICE_MEMORY, CKR_HOST_MEMORY, CKR_CRYPTOKI_NOT_INITIALIZED,
         CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID]
            .contains(error.code)
    }

    // MARK: Checks

    static func requireAES(_ key: TokenKey, bits: Int?, name: String) throws(TokenKeyError) {
        guard case .oct(let keyBits) = key.spec, !key.isHMACKey else {
            throw .algorithmMismatch("\(name) needs an AES key; this key is \(key.isHMACKey ? "an HMAC key" : "\(key.spec)")")
        }
        if let bits, bits != keyBits {
            throw .algorithmMismatch("\(name) needs a \(bits)-bit key; this key has \(keyBits) bits")
        }
    }

    private static func refuseAESParameters(_ name: String, iv: [UInt8]?, aad: [UInt8]?, tag: [UInt8]?) throws(TokenKeyError) {
        if iv != nil || aad != nil || tag != nil {
            throw .invalidInput("iv, aad and tag are for AES algorithms, not \(name)")
        }
    }

    private static func requireCBCParameters(_ name: String, iv: [UInt8]?, aad: [UInt8]?) throws(TokenKeyError) -> [UInt8] {
        guard aad == nil else { throw .invalidInput("aad is only for AES-GCM, not \(name)") }
        guard let iv, iv.count == aesBlockSize else {
            throw .invalidInput("\(name) needs a 16-byte iv")
        }
        return iv
    }

    private static func requireWholeBlocks(_ data: [UInt8], name: String, what: String) throws(TokenKeyError) {
        guard !data.isEmpty, data.count % aesBlockSize == 0 else {
            throw .invalidInput("\(name) \(what) must be a non-empty multiple of 16 bytes; it has \(data.count)")
        }
    }
}

extension EncryptionAlgorithm.Mode {
    var isPadded: Bool {
        if case .cbcPad = self { return true }
        return false
    }
}
