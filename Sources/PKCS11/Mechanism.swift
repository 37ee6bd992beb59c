import CPKCS11

/// A PKCS#11 mechanism with its parameter, held as Swift values until a call needs the C form.
public struct Mechanism: Sendable {
    public enum Parameter: Sendable {
        case none
        case bytes([UInt8])
        case pss(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, saltLength: Int)
        case oaep(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE)
        case gcm(iv: [UInt8], aad: [UInt8], tagBits: Int)
    }

    public let type: CK_MECHANISM_TYPE
    public let parameter: Parameter

    public init(_ type: CK_MECHANISM_TYPE, _ parameter: Parameter = .none) {
        self.type = type
        self.parameter = parameter
    }

    /// The mechanism's standard name for messages, e.g. `CKM_AES_GCM`.
    public var name: String { MechanismNames.name(of: type) }
}

extension Mechanism {
    /// Builds the C `CK_MECHANISM` and its parameter on the stack for the duration of `body`.
    func withCMechanism<R>(_ body: (UnsafeMutablePointer<CK_MECHANISM>) throws -> R) rethrows -> R {
        switch parameter {
        case .none:
            var mechanism = CK_MECHANISM(mechanism: type, pParameter: nil, ulParameterLen: 0)
            return try body(&mechanism)
        case .bytes(var bytes):
            return try bytes.withUnsafeMutableBytes { raw in
                var mechanism = CK_MECHANISM(
                    mechanism: type, pParameter: raw.baseAddress, ulParameterLen: CK_ULONG(raw.count))
                return try body(&mechanism)
            }
        case let .pss(hash, mgf, saltLength):
            var params = CK_RSA_PKCS_PSS_PARAMS(hashAlg: hash, mgf: mgf, sLen: CK_ULONG(saltLength))
            return try withUnsafeMutablePointer(to: &params) { pointer in
                var mechanism = CK_MECHANISM(
                    mechanism: type, pParameter: UnsafeMutableRawPointer(pointer),
                    ulParameterLen: CK_ULONG(MemoryLayout<CK_RSA_PKCS_PSS_PARAMS>.size))
                return try body(&mechanism)
            }
        case let .oaep(hash, mgf):
            var params = CK_RSA_PKCS_OAEP_PARAMS(
                hashAlg: hash, mgf: mgf, source: CK_RSA_PKCS_OAEP_SOURCE_TYPE(CKZ_DATA_SPECIFIED),
                pSourceData: nil, ulSourceDataLen: 0)
            return try withUnsafeMutablePointer(to: &params) { pointer in
                var mechanism = CK_MECHANISM(
                    mechanism: type, pParameter: UnsafeMutableRawPointer(pointer),
                    ulParameterLen: CK_ULONG(MemoryLayout<CK_RSA_PKCS_OAEP_PARAMS>.size))
                return try body(&mechanism)
            }
        case .gcm(var iv, var aad, let tagBits):
            return try iv.withUnsafeMutableBufferPointer { ivBuffer in
                try aad.withUnsafeMutableBufferPointer { aadBuffer in
                    var params = CK_GCM_PARAMS(
                        pIv: ivBuffer.baseAddress, ulIvLen: CK_ULONG(ivBuffer.count),
                        ulIvBits: CK_ULONG(ivBuffer.count * 8),
                        pAAD: aadBuffer.count == 0 ? nil : aadBuffer.baseAddress, ulAADLen: CK_ULONG(aadBuffer.count),
                        ulTagBits: CK_ULONG(tagBits))
                    return try withUnsafeMutablePointer(to: &params) { pointer in
                        var mechanism = CK_MECHANISM(
                            mechanism: type, pParameter: UnsafeMutableRawPointer(pointer),
                            ulParameterLen: CK_ULONG(MemoryLayout<CK_GCM_PARAMS>.size))
                        return try body(&mechanism)
                    }
                }
            }
        }
    }
}

enum MechanismNames {
    static func name(of type: CK_MECHANISM_TYPE) -> String {
        table[type] ?? "CKM_0x\(String(type, radix: 16))"
    }

    private static let table: [CK_MECHANISM_TYPE: String] = [
        CKM_RSA_PKCS_KEY_PAIR_GEN: "CKM_RSA_PKCS_KEY_PAIR_GEN", CKM_EC_KEY_PAIR_GEN: "CKM_EC_KEY_PAIR_GEN",
        CKM_AES_KEY_GEN: "CKM_AES_KEY_GEN", CKM_RSA_PKCS: "CKM_RSA_PKCS", CKM_RSA_X_509: "CKM_RSA_X_509",
        CKM_RSA_PKCS_PSS: "CKM_RSA_PKCS_PSS", CKM_RSA_PKCS_OAEP: "CKM_RSA_PKCS_OAEP", CKM_ECDSA: "CKM_ECDSA",
        CKM_AES_GCM: "CKM_AES_GCM", CKM_AES_CBC: "CKM_AES_CBC", CKM_AES_CBC_PAD: "CKM_AES_CBC_PAD",
        CKM_AES_ECB: "CKM_AES_ECB", CKM_AES_KEY_WRAP: "CKM_AES_KEY_WRAP", CKM_AES_KEY_WRAP_PAD: "CKM_AES_KEY_WRAP_PAD",
        CKM_SHA_1: "CKM_SHA_1", CKM_SHA256: "CKM_SHA256", CKM_SHA384: "CKM_SHA384", CKM_SHA512: "CKM_SHA512",
        CKM_SHA256_HMAC: "CKM_SHA256_HMAC", CKM_SHA384_HMAC: "CKM_SHA384_HMAC", CKM_SHA512_HMAC: "CKM_SHA512_HMAC",
    ]
}
