import XCTest

@testable import Vault

/// wrapKey/unwrapKey of raw key bytes, checked against RFC 3394 / RFC 5649 in Python's `cryptography`.
final class KeyWrapTests: SharedTokenTestCase {

    func testAESKeyWrapInteroperates() throws {
        for bits in KeySpec.octSizes {
            let jwk = try CrossCheck.one(["op": "generate", "kind": "oct", "size": bits])
            let id = try Self.fixture.newID("kek")
            try token.importKey(id, material: importMaterial(jwk), usage: [.wrapKey, .unwrapKey])
            for (algorithm, pad) in [(WrapAlgorithm(rawValue: "A\(bits)KW")!, false), (.aesKeyWrap, false), (.aesKeyWrapPad, true)] {
                for length in [16, 24, 32, 64] {
                    let keyBytes = [UInt8].random(length)
                    let wrapped = try token.wrap(id, algorithm: algorithm, keyBytes: keyBytes)
                    let theirUnwrap = try CrossCheck.one(["op": "kw-unwrap", "pad": pad, "key": jwk, "value": wrapped.base64URL])
                    XCTAssertEqual([UInt8](base64URL: theirUnwrap["value"] as! String), keyBytes, "\(algorithm) \(length)")
                    let theirWrap = try CrossCheck.one(["op": "kw-wrap", "pad": pad, "key": jwk, "value": keyBytes.base64URL])
                    let unwrapped = try token.unwrap(id, algorithm: algorithm, wrapped: [UInt8](base64URL: theirWrap["value"] as! String))
                    XCTAssertEqual(unwrapped, keyBytes, "\(algorithm) \(length)")
                }
            }
        }
    }

    func testKeyWrapPadUnwrapsAnyLength() throws {
        let jwk = try CrossCheck.one(["op": "generate", "kind": "oct", "size": 256])
        let id = try Self.fixture.newID("kek")
        try token.importKey(id, material: importMaterial(jwk), usage: [.wrapKey, .unwrapKey])
        for length in [1, 7, 20, 33] {
            let keyBytes = [UInt8].random(length)
            let theirWrap = try CrossCheck.one(["op": "kw-wrap", "pad": true, "key": jwk, "value": keyBytes.base64URL])
            XCTAssertEqual(try token.unwrap(id, algorithm: .aesKeyWrapPad, wrapped: [UInt8](base64URL: theirWrap["value"] as! String)), keyBytes)
        }
    }

    func testTamperedOrForeignWrapsFail() throws {
        let id = try Self.fixture.newID("kek")
        try token.generate(id, spec: .oct(bits: 256), usage: [.wrapKey, .unwrapKey])
        let other = try Self.fixture.newID("kek")
        try token.generate(other, spec: .oct(bits: 256), usage: [.wrapKey, .unwrapKey])
        var wrapped = try token.wrap(id, algorithm: .a256KW, keyBytes: .random(32))
        XCTAssertThrowsError(try token.unwrap(other, algorithm: .a256KW, wrapped: wrapped)) { error in
            XCTAssertEqual(error as? TokenKeyError, .decryptionFailed)
        }
        wrapped[3] ^= 0x10
        XCTAssertThrowsError(try token.unwrap(id, algorithm: .a256KW, wrapped: wrapped)) { error in
            XCTAssertEqual(error as? TokenKeyError, .decryptionFailed)
        }
        XCTAssertThrowsError(try token.wrap(id, algorithm: .a256KW, keyBytes: .random(12))) { error in
            guard case .invalidInput = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try token.wrap(id, algorithm: .a128KW, keyBytes: .random(16))) { error in
            XCTAssertEqual(error as? TokenKeyError, .algorithmMismatch("A128KW needs a 128-bit key; this key has 256 bits"))
        }
    }

    func testRSAWrapIsEncryptionOfTheKeyBytes() throws {
        let jwk = try CrossCheck.one(["op": "generate", "kind": "rsa", "size": 2048])
        let id = try Self.fixture.newID("rsa")
        try token.importKey(id, material: importMaterial(jwk), usage: [.wrapKey, .unwrapKey])
        for algorithm in [WrapAlgorithm.rsa1_5, .rsaOAEP, .rsaOAEP256] {
            let keyBytes = [UInt8].random(32)
            let wrapped = try token.wrap(id, algorithm: algorithm, keyBytes: keyBytes)
            let theirs = try CrossCheck.one(["op": "rsa-decrypt", "alg": algorithm.rawValue, "key": jwk, "value": wrapped.base64URL])
            XCTAssertEqual([UInt8](base64URL: theirs["value"] as! String), keyBytes)
            XCTAssertEqual(try token.unwrap(id, algorithm: algorithm, wrapped: wrapped), keyBytes)
        }
    }
}
