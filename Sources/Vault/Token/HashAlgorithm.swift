import CPKCS11
import PKCS11
import SwiftASN1

/// The SHA-2 hashes behind Azure's algorithm names.
enum HashAlgorithm: Sendable {
    case sha256, sha384, sha512

    var digestLength: Int {
        switch self {
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    var digestMechanism: CK_MECHANISM_TYPE {
        switch self {
        case .sha256: CKM_SHA256
        case .sha384: CKM_SHA384
        case .sha512: CKM_SHA512
        }
    }

    var mgf: CK_RSA_PKCS_MGF_TYPE {
        switch self {
        case .sha256: CKG_MGF1_SHA256
        case .sha384: CKG_MGF1_SHA384
        case .sha512: CKG_MGF1_SHA512
        }
    }

    var hmacMechanism: CK_MECHANISM_TYPE {
        switch self {
        case .sha256: CKM_SHA256_HMAC
        case .sha384: CKM_SHA384_HMAC
        case .sha512: CKM_SHA512_HMAC
        }
    }

    private var objectIdentifier: ASN1ObjectIdentifier {
        switch self {
        case .sha256: [2, 16, 840, 1, 101, 3, 4, 2, 1]
        case .sha384: [2, 16, 840, 1, 101, 3, 4, 2, 2]
        case .sha512: [2, 16, 840, 1, 101, 3, 4, 2, 3]
        }
    }

    /// The PKCS#1 v1.5 DigestInfo (RFC 8017 §9.2) that RS* signatures sign: the token's CKM_RSA_PKCS
    /// pads it, so the daemon only wraps the caller's digest in it.
    func digestInfo(_ digest: [UInt8]) -> [UInt8] {
        var serializer = DER.Serializer()
        // Serialising these fixed, well-formed values cannot fail.
        try! serializer.appendConstructedNode(identifier: .sequence) { info in
            try info.appendConstructedNode(identifier: .sequence) { algorithm in
                try algorithm.serialize(objectIdentifier)
                try algorithm.serialize(ASN1Null())
            }
            try info.serialize(ASN1OctetString(contentBytes: ArraySlice(digest)))
        }
        return serializer.serializedBytes
    }
}
