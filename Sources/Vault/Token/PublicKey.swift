import SwiftASN1

/// The public half of an asymmetric key, as the JWK carries it. Nothing private ever gets here.
public enum PublicKey: Hashable, Sendable {
    case rsa(modulus: [UInt8], exponent: [UInt8])
    case ec(curve: Curve, x: [UInt8], y: [UInt8])

    /// `CKA_EC_POINT`: a DER OCTET STRING holding the uncompressed point 04‖x‖y.
    static func ecPointAttribute(x: [UInt8], y: [UInt8]) -> [UInt8] {
        var serializer = DER.Serializer()
        // Serialising an octet string cannot fail.
        try! serializer.serialize(ASN1OctetString(contentBytes: ArraySlice([0x04] + x + y)))
        return serializer.serializedBytes
    }

    /// Reads `CKA_EC_POINT` back into its coordinates.
    static func ec(curve: Curve, pointAttribute: [UInt8]) -> PublicKey? {
        guard let octets = try? ASN1OctetString(derEncoded: pointAttribute) else { return nil }
        let point = Array(octets.bytes)
        let size = curve.coordinateSize
        guard point.count == 1 + 2 * size, point[0] == 0x04 else { return nil }
        return .ec(curve: curve, x: Array(point[1...size]), y: Array(point[(1 + size)...]))
    }
}

/// Private key material handed to hsmd for import (from a JWK). It goes into the token and is
/// zeroed by the caller's scope; hsmd never reads it back.
public enum ImportedKeyMaterial: Sendable {
    case rsa(RSAPrivateComponents)
    case ec(curve: Curve, d: [UInt8], x: [UInt8], y: [UInt8])
    case oct(key: [UInt8])

    public struct RSAPrivateComponents: Sendable {
        public var n, e, d: [UInt8]
        public var p, q, dp, dq, qi: [UInt8]

        public init(n: [UInt8], e: [UInt8], d: [UInt8], p: [UInt8], q: [UInt8], dp: [UInt8], dq: [UInt8], qi: [UInt8]) {
            (self.n, self.e, self.d, self.p, self.q, self.dp, self.dq, self.qi) = (n, e, d, p, q, dp, dq, qi)
        }
    }
}
