import CPKCS11
import PKCS11

/// Makes key versions in the token, by generation or import, on one borrowed session.
struct KeyFactory {
    let session: Session

    func generate(_ id: TokenKeyID, spec: KeySpec, usage: KeyUsage) throws -> TokenKey {
        switch spec {
        case .rsa(let bits):
            let pair = try session.generateKeyPair(
                Mechanism(CKM_RSA_PKCS_KEY_PAIR_GEN),
                publicTemplate: KeyTemplates.publicKey(id, usage: usage) + [
                    .ulong(CKA_MODULUS_BITS, CK_ULONG(bits)),
                    .bytes(CKA_PUBLIC_EXPONENT, [0x01, 0x00, 0x01]),
                ],
                privateTemplate: KeyTemplates.privateKey(id, usage: usage))
            return try TokenIndexer(session: session).rsaKey(id, privateHandle: pair.privateKey, publicHandle: pair.publicKey)
        case .ec(let curve):
            let pair = try session.generateKeyPair(
                Mechanism(CKM_EC_KEY_PAIR_GEN),
                publicTemplate: KeyTemplates.publicKey(id, usage: usage) + [.bytes(CKA_EC_PARAMS, curve.ecParameters)],
                privateTemplate: KeyTemplates.privateKey(id, usage: usage))
            return try TokenIndexer(session: session).ecKey(
                id, curve: curve, privateHandle: pair.privateKey, publicHandle: pair.publicKey)
        case .oct(let bits):
            let secret = try session.generateKey(
                Mechanism(usage.makesHMACKey ? CKM_GENERIC_SECRET_KEY_GEN : CKM_AES_KEY_GEN),
                template: KeyTemplates.secretKey(id, usage: usage) + [.ulong(CKA_VALUE_LEN, CK_ULONG(bits / 8))])
            return TokenKey(
                id: id, spec: .oct(bits: bits), privateHandle: secret, publicHandle: nil, publicKey: nil,
                isHMACKey: usage.makesHMACKey)
        }
    }

    func importKey(_ id: TokenKeyID, material: ImportedKeyMaterial, usage: KeyUsage) throws -> TokenKey {
        switch material {
        case .rsa(let rsa):
            let bits = significantBits(rsa.n)
            guard KeySpec.rsaSizes.contains(bits) else {
                throw TokenKeyError.invalidInput("RSA modulus must be 2048, 3072 or 4096 bits, not \(bits)")
            }
            guard !rsa.d.isEmpty, !rsa.e.isEmpty else {
                throw TokenKeyError.invalidInput("an RSA private key needs n, e and d")
            }
            if let problem = rsa.consistencyProblem() {
                throw TokenKeyError.invalidInput("the RSA key's parts are not one key: \(problem)")
            }
            let rsaType: [Attribute] = [
                .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_RSA)),
                .bytes(CKA_MODULUS, rsa.n), .bytes(CKA_PUBLIC_EXPONENT, rsa.e),
            ]
            var privateParts: [Attribute] = [.bytes(CKA_PRIVATE_EXPONENT, rsa.d)]
            let crt: [(CK_ATTRIBUTE_TYPE, [UInt8])] = [
                (CKA_PRIME_1, rsa.p), (CKA_PRIME_2, rsa.q), (CKA_EXPONENT_1, rsa.dp),
                (CKA_EXPONENT_2, rsa.dq), (CKA_COEFFICIENT, rsa.qi),
            ]
            privateParts += crt.filter { !$0.1.isEmpty }.map { Attribute.bytes($0.0, $0.1) }
            let privateHandle = try session.createObject(
                [.ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY))] + rsaType + KeyTemplates.privateKey(id, usage: usage)
                    + privateParts)
            let publicHandle = try session.createObject(
                [.ulong(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY))] + rsaType + KeyTemplates.publicKey(id, usage: usage))
            try requireMatchingPair(privateHandle, publicHandle, mechanism: CKM_RSA_PKCS)
            return try TokenIndexer(session: session).rsaKey(id, privateHandle: privateHandle, publicHandle: publicHandle)
        case let .ec(curve, d, x, y):
            let size = curve.coordinateSize
            guard x.count == size, y.count == size, d.count == size else {
                throw TokenKeyError.invalidInput("\(curve.rawValue) key parts x, y and d must be \(size) bytes each")
            }
            let ecType: [Attribute] = [.ulong(CKA_KEY_TYPE, CK_ULONG(CKK_EC)), .bytes(CKA_EC_PARAMS, curve.ecParameters)]
            let privateHandle = try session.createObject(
                [.ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY))] + ecType + KeyTemplates.privateKey(id, usage: usage)
                    + [.bytes(CKA_VALUE, d)])
            let publicHandle = try session.createObject(
                [.ulong(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY))] + ecType + KeyTemplates.publicKey(id, usage: usage)
                    + [.bytes(CKA_EC_POINT, PublicKey.ecPointAttribute(x: x, y: y))])
            try requireMatchingPair(privateHandle, publicHandle, mechanism: CKM_ECDSA)
            return try TokenIndexer(session: session).ecKey(
                id, curve: curve, privateHandle: privateHandle, publicHandle: publicHandle)
        case .oct(let key):
            guard (KeySpec.octSizes + KeySpec.hmacSizes).contains(key.count * 8) else {
                throw TokenKeyError.invalidInput("an oct key must be 16, 24, 32, 48 or 64 bytes, not \(key.count)")
            }
            let secret = try session.createObject(KeyTemplates.secretKey(id, usage: usage) + [.bytes(CKA_VALUE, key)])
            return TokenKey(
                id: id, spec: .oct(bits: key.count * 8), privateHandle: secret, publicHandle: nil, publicKey: nil,
                isHMACKey: usage.makesHMACKey)
        }
    }
}

extension KeyFactory {
    /// Imported parts must be one key: a challenge signed with the private part (on a session copy
    /// allowed to sign, whatever the key's own usage) must verify with the public part. Catches a
    /// private key paired with another key's public part, and EC points that are not on the curve.
    private func requireMatchingPair(_ privateKey: ObjectHandle, _ publicKey: ObjectHandle, mechanism: CK_MECHANISM_TYPE) throws {
        let mismatch = TokenKeyError.invalidInput("key: the private and public parts given do not belong to one key")
        let signer = try session.copyObject(privateKey, template: [.bool(CKA_TOKEN, false), .bool(CKA_SIGN, true)])
        defer { try? session.destroyObject(signer) }
        let verifier = try session.copyObject(publicKey, template: [.bool(CKA_TOKEN, false), .bool(CKA_VERIFY, true)])
        defer { try? session.destroyObject(verifier) }
        let challenge = try session.generateRandom(count: 32)
        do {
            let signature = try session.sign(Mechanism(mechanism), key: signer, data: challenge, capacity: 512)
            guard try session.verify(Mechanism(mechanism), key: verifier, data: challenge, signature: signature) else { throw mismatch }
        } catch is P11Error {
            throw mismatch
        }
    }
}

/// Bits in a big-endian unsigned integer, ignoring leading zero bytes.
func significantBits(_ bytes: [UInt8]) -> Int {
    guard let first = bytes.firstIndex(where: { $0 != 0 }) else { return 0 }
    return (bytes.count - first) * 8 - bytes[first].leadingZeroBitCount
}
