import SwiftASN1

/// A JWK's public key as X.509 SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), the form OpenSSL and every
/// TLS stack read: RSA per RFC 3279 §2.3.1, EC per RFC 5480 (uncompressed point, named curve).
struct SubjectPublicKeyInfo: DERSerializable {
    private let algorithm: ASN1ObjectIdentifier
    /// The curve's OID for EC, NULL for RSA (RFC 3279 requires the NULL).
    private let parameters: ASN1Any
    private let publicKey: [UInt8]

    /// Why a JWK has no SubjectPublicKeyInfo.
    struct Unavailable: Error {
        let reason: String
    }

    init(jwk: KeyBundle.WebKey) throws {
        if let n = jwk.n.flatMap(Bytes.base64), let e = jwk.e.flatMap(Bytes.base64) {
            var key = DER.Serializer()
            try key.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(ArraySlice(n))
                try coder.serialize(ArraySlice(e))
            }
            algorithm = .AlgorithmIdentifier.rsaEncryption
            parameters = try ASN1Any(erasing: ASN1Null())
            publicKey = key.serializedBytes
        } else if let crv = jwk.crv, let x = jwk.x.flatMap(Bytes.base64), let y = jwk.y.flatMap(Bytes.base64) {
            guard let curve = Self.curves[crv] else { throw Unavailable(reason: "the curve \(crv) has no known OID") }
            algorithm = .AlgorithmIdentifier.idEcPublicKey
            parameters = try ASN1Any(erasing: curve)
            publicKey = [0x04] + x + y
        } else {
            throw Unavailable(reason: "\(jwk.kty) keys have no public key: their material never leaves the token")
        }
    }

    private static let curves: [String: ASN1ObjectIdentifier] = [
        "P-256": .NamedCurves.secp256r1, "P-384": .NamedCurves.secp384r1, "P-521": .NamedCurves.secp521r1,
        // SEC 2 §A.2.1; SwiftASN1 names only the NIST curves.
        "P-256K": [1, 3, 132, 0, 10],
    ]

    func serialize(into coder: inout DER.Serializer) throws {
        try coder.appendConstructedNode(identifier: .sequence) { coder in
            try coder.appendConstructedNode(identifier: .sequence) { coder in
                try coder.serialize(algorithm)
                try coder.serialize(parameters)
            }
            try coder.serialize(ASN1BitString(bytes: ArraySlice(publicKey)))
        }
    }

    var der: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }

    var pem: String {
        get throws { PEMDocument(type: "PUBLIC KEY", derBytes: try der).pemString + "\n" }
    }
}

/// ECDSA signatures between the API's raw r‖s (JWS) and DER's `SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3).
enum ECDSASignature {
    struct Malformed: Error {}

    static func der(fromRaw raw: [UInt8]) throws -> [UInt8] {
        guard raw.count % 2 == 0 else { throw Malformed() }
        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(raw[..<(raw.count / 2)])
            try coder.serialize(raw[(raw.count / 2)...])
        }
        return serializer.serializedBytes
    }

    static func raw(fromDER der: [UInt8], coordinateLength: Int) throws -> [UInt8] {
        let (r, s) = try DER.sequence(try DER.parse(der), identifier: .sequence) { nodes in
            (try ArraySlice<UInt8>(derEncoded: &nodes), try ArraySlice<UInt8>(derEncoded: &nodes))
        }
        return try [r, s].flatMap { integer -> [UInt8] in
            let magnitude = integer.drop { $0 == 0 }
            guard magnitude.count <= coordinateLength else { throw Malformed() }
            return [UInt8](repeating: 0, count: coordinateLength - magnitude.count) + magnitude
        }
    }
}
