import CPKCS11
import PKCS11

extension VaultToken {
    /// Signs a digest the caller computed (Azure never hashes for RS/PS/ES); for HS* the value is
    /// the message itself, which the token MACs.
    public func sign(_ id: TokenKeyID, algorithm: SignatureAlgorithm, digest: [UInt8]) throws(TokenKeyError) -> [UInt8] {
        try usingKey(id) { key throws(TokenKeyError) in
            let plan = try SignaturePlan(algorithm: algorithm, key: key, value: digest)
            return try withSession { session in
                try session.sign(plan.mechanism, key: key.privateHandle, data: plan.input, capacity: plan.signatureSize)
            }
        }
    }

    /// True when the signature is valid for the digest under the key's public part.
    public func verify(
        _ id: TokenKeyID, algorithm: SignatureAlgorithm, digest: [UInt8], signature: [UInt8]
    ) throws(TokenKeyError) -> Bool {
        try usingKey(id) { key throws(TokenKeyError) in
            let plan = try SignaturePlan(algorithm: algorithm, key: key, value: digest)
            guard signature.count == plan.signatureSize else { return false }
            return try withSession { session in
                try session.verify(
                    plan.mechanism, key: key.publicHandle ?? key.privateHandle, data: plan.input, signature: signature)
            }
        }
    }
}

/// How one signature algorithm runs on one key: checked once, shared by sign and verify.
struct SignaturePlan {
    let mechanism: Mechanism
    let input: [UInt8]
    let signatureSize: Int

    init(algorithm: SignatureAlgorithm, key: TokenKey, value: [UInt8]) throws(TokenKeyError) {
        let hash = algorithm.hash
        let name = algorithm.rawValue
        switch (algorithm, key.spec) {
        case (.rs256, .rsa), (.rs384, .rsa), (.rs512, .rsa):
            try Self.requireDigest(value, hash, name)
            mechanism = Mechanism(CKM_RSA_PKCS)
            input = hash.digestInfo(value)
            signatureSize = key.modulusSize
        case (.ps256, .rsa), (.ps384, .rsa), (.ps512, .rsa):
            try Self.requireDigest(value, hash, name)
            mechanism = Mechanism(
                CKM_RSA_PKCS_PSS, .pss(hash: hash.digestMechanism, mgf: hash.mgf, saltLength: hash.digestLength))
            input = value
            signatureSize = key.modulusSize
        case (.es256, .ec(let curve)), (.es256k, .ec(let curve)), (.es384, .ec(let curve)), (.es512, .ec(let curve)):
            guard algorithm.curve == curve else {
                throw .algorithmMismatch(
                    "\(name) needs a \(algorithm.curve?.rawValue ?? "") key; this key is on \(curve.rawValue)")
            }
            try Self.requireDigest(value, hash, name)
            mechanism = Mechanism(CKM_ECDSA)
            input = value
            signatureSize = 2 * curve.coordinateSize
        case (.hs256, .oct), (.hs384, .oct), (.hs512, .oct):
            guard key.isHMACKey else {
                throw .algorithmMismatch("\(name) needs an HMAC key (an oct key created with key_ops sign and verify); this is an AES key")
            }
            guard case .oct(let bits) = key.spec, bits >= hash.digestLength * 8 else {
                throw .algorithmMismatch("\(name) needs a key of at least \(hash.digestLength * 8) bits (RFC 7518 §3.2); this key is \(key.spec)")
            }
            mechanism = Mechanism(hash.hmacMechanism)
            input = value
            signatureSize = hash.digestLength
        default:
            throw .algorithmMismatch("\(name) cannot be used with a \(key.spec) key")
        }
    }

    private static func requireDigest(_ digest: [UInt8], _ hash: HashAlgorithm, _ name: String) throws(TokenKeyError) {
        guard digest.count == hash.digestLength else {
            throw .invalidInput("\(name) signs a \(hash.digestLength)-byte digest; the value has \(digest.count) bytes")
        }
    }
}
