import CPKCS11
import PKCS11
import XCTest

@testable import Vault

final class KeyGenerationTests: SharedTokenTestCase {

    func testEveryKeyTypeSizeAndCurveIsGenerated() throws {
        for bits in KeySpec.rsaSizes {
            let key = try token.generate(Self.fixture.newID("rsa"), spec: .rsa(bits: bits), usage: .defaults(for: .rsa(bits: bits)))
            guard case let .rsa(modulus, exponent)? = key.publicKey else { return XCTFail("no RSA public key") }
            XCTAssertEqual(significantBits(modulus), bits)
            XCTAssertEqual(exponent, [0x01, 0x00, 0x01])
            XCTAssertEqual(key.spec, .rsa(bits: bits))
        }
        for curve in Curve.allCases {
            let key = try token.generate(Self.fixture.newID("ec"), spec: .ec(curve), usage: [.sign, .verify])
            guard case let .ec(keyCurve, x, y)? = key.publicKey else { return XCTFail("no EC public key") }
            XCTAssertEqual(keyCurve, curve)
            XCTAssertEqual(x.count, curve.coordinateSize)
            XCTAssertEqual(y.count, curve.coordinateSize)
            // The point must lie on the curve: the independent implementation refuses it otherwise.
            _ = try CrossCheck.one([
                "op": "verify", "alg": "ES256", "key": key.publicKey!.jwk,
                "digest": [UInt8](repeating: 1, count: 32).base64URL,
                "signature": [UInt8](repeating: 1, count: 2 * curve.coordinateSize).base64URL,
            ])
        }
        for bits in KeySpec.octSizes {
            let key = try token.generate(Self.fixture.newID("aes"), spec: .oct(bits: bits), usage: .defaults(for: .oct(bits: bits)))
            XCTAssertNil(key.publicKey)
            XCTAssertEqual(key.spec, .oct(bits: bits))
        }
    }

    func testUnsupportedSizesAreRefused() throws {
        XCTAssertThrowsError(try token.generate(Self.fixture.newID(), spec: .rsa(bits: 1024), usage: [.sign])) { error in
            XCTAssertEqual(error as? TokenKeyError, .invalidInput("RSA key size must be 2048, 3072 or 4096 bits, not 1024"))
        }
        XCTAssertThrowsError(try token.generate(Self.fixture.newID(), spec: .oct(bits: 512), usage: [.encrypt]))
    }

    func testKeysAreIndexedAndDestroyed() throws {
        let id = try Self.fixture.newID()
        try token.generate(id, spec: .ec(.p256), usage: [.sign, .verify])
        XCTAssertEqual(try token.key(id).id, id)
        XCTAssertThrowsError(try token.generate(id, spec: .ec(.p256), usage: [.sign]), "a version id is never reused")
        try token.destroy(id)
        XCTAssertThrowsError(try token.key(id)) { XCTAssertEqual($0 as? TokenKeyError, .keyNotFound(id)) }
        let remaining = try token.pool.withSession { session in
            try session.findObjects([.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)])
        }
        XCTAssertEqual(remaining, [], "destroy removes every object of the version from the token")
    }

    func testObjectsCarryLabelIDAndUsageFlags() throws {
        let id = try Self.fixture.newID("flags")
        let key = try token.generate(id, spec: .rsa(bits: 2048), usage: [.sign, .verify])
        let values = try token.pool.withSession { session in
            try session.attributeValues(
                of: key.privateHandle,
                [CKA_LABEL, CKA_ID, CKA_SIGN, CKA_DECRYPT, CKA_UNWRAP, CKA_SENSITIVE, CKA_WRAP_WITH_TRUSTED, CKA_TOKEN])
        }
        XCTAssertEqual(values[CKA_LABEL], Array(id.name.utf8))
        XCTAssertEqual(values[CKA_ID], id.objectID)
        XCTAssertEqual(values[CKA_SIGN]?.asBool, true)
        XCTAssertEqual(values[CKA_DECRYPT]?.asBool, false)
        XCTAssertEqual(values[CKA_UNWRAP]?.asBool, false)
        XCTAssertEqual(values[CKA_SENSITIVE]?.asBool, true)
        XCTAssertEqual(values[CKA_WRAP_WITH_TRUSTED]?.asBool, true)
        XCTAssertEqual(values[CKA_TOKEN]?.asBool, true)
        XCTAssertThrowsError(
            try token.encrypt(id, algorithm: .rsaOAEP, plaintext: [1, 2, 3]), "the token refuses what key_ops left out"
        ) { error in
            guard case .operationNotPermitted = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
    }

    func testRandomBytesAndVersionsComeFromTheToken() throws {
        let bytes = try token.randomBytes(count: 128)
        XCTAssertEqual(bytes.count, 128)
        XCTAssertNotEqual(bytes, try token.randomBytes(count: 128))
        let version = try token.newVersion()
        XCTAssertTrue(TokenKeyID.isValidVersion(version))
    }
}
