import SwiftASN1

/// What kind of key a token object holds, in Azure's terms.
public enum KeySpec: Hashable, Sendable, CustomStringConvertible {
    case rsa(bits: Int)
    case ec(Curve)
    case oct(bits: Int)

    public static let rsaSizes = [2048, 3072, 4096]
    public static let octSizes = [128, 192, 256]
    /// HMAC keys must be at least as long as the hash (RFC 7518 §3.2): HS384 and HS512 need
    /// longer keys than AES has, so HMAC keys also come in 384 and 512 bits.
    public static let hmacSizes = [256, 384, 512]

    public var description: String {
        switch self {
        case .rsa(let bits): "RSA-\(bits)"
        case .ec(let curve): "EC \(curve.rawValue)"
        case .oct(let bits): "oct-\(bits)"
        }
    }

    /// Throws unless the size is one hsmd offers.
    public func validated() throws(TokenKeyError) -> KeySpec {
        switch self {
        case .rsa(let bits) where !Self.rsaSizes.contains(bits):
            throw .invalidInput("RSA key size must be 2048, 3072 or 4096 bits, not \(bits)")
        case .oct(let bits) where !Self.octSizes.contains(bits) && !Self.hmacSizes.contains(bits):
            throw .invalidInput("oct key size must be 128, 192 or 256 bits (AES), or 256, 384 or 512 bits (HMAC), not \(bits)")
        default:
            return self
        }
    }
}

/// The elliptic curves Azure names, with what the token needs to know about them.
public enum Curve: String, CaseIterable, Sendable {
    case p256 = "P-256"
    case p256k = "P-256K"
    case p384 = "P-384"
    case p521 = "P-521"

    /// Bytes of one coordinate, and of each half of a raw r‖s signature.
    public var coordinateSize: Int {
        switch self {
        case .p256, .p256k: 32
        case .p384: 48
        case .p521: 66
        }
    }

    var objectIdentifier: ASN1ObjectIdentifier {
        switch self {
        case .p256: [1, 2, 840, 10045, 3, 1, 7]
        case .p384: [1, 3, 132, 0, 34]
        case .p521: [1, 3, 132, 0, 35]
        case .p256k: [1, 3, 132, 0, 10]
        }
    }

    /// `CKA_EC_PARAMS`: the DER encoding of the curve's OID (named-curve form).
    var ecParameters: [UInt8] {
        var serializer = DER.Serializer()
        // Serialising a well-formed OID cannot fail.
        try! serializer.serialize(objectIdentifier)
        return serializer.serializedBytes
    }

    init?(ecParameters: [UInt8]) {
        guard let oid = try? ASN1ObjectIdentifier(derEncoded: ecParameters),
            let curve = Curve.allCases.first(where: { $0.objectIdentifier == oid })
        else { return nil }
        self = curve
    }
}
