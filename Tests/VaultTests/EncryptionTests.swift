import XCTest

@testable import Vault

/// RSA and AES encryption, checked in both directions against Python's `cryptography`.
final class EncryptionTests: XCTestCase {
    nonisolated(unsafe) static var fixture: TokenFixture!
    nonisolated(unsafe) static var rsaJWK: [String: Any] = [:]
    nonisolated(unsafe) static var rsaID: TokenKeyID!
    var token: VaultToken { Self.fixture.token }

    override class func setUp() {
        fixture = try! TokenFixture()
        rsaJWK = try! CrossCheck.one(["op": "generate", "kind": "rsa", "size": 2048])
        rsaID = try! fixture.newID("rsa")
        try! fixture.token.importKey(rsaID, material: importMaterial(rsaJWK), usage: .defaults(for: .rsa(bits: 2048)))
    }

    override class func tearDown() {
        fixture.close()
    }

    private func aesKey(bits: Int = 256) throws -> (TokenKeyID, [String: Any]) {
        let jwk = try CrossCheck.one(["op": "generate", "kind": "oct", "size": bits])
        let id = try Self.fixture.newID("aes")
        try token.importKey(id, material: importMaterial(jwk), usage: .defaults(for: .oct(bits: bits)))
        return (id, jwk)
    }

    func testRSAEncryptionInteroperates() throws {
        let algorithms: [EncryptionAlgorithm] = [.rsa1_5, .rsaOAEP, .rsaOAEP256]
        let plaintexts = algorithms.map { _ in [UInt8].random(32) }
        let ours = try zip(algorithms, plaintexts).map { try token.encrypt(Self.rsaID, algorithm: $0, plaintext: $1).value }
        let decrypted = try CrossCheck.run(zip(algorithms, ours).map { algorithm, ciphertext in
            ["op": "rsa-decrypt", "alg": algorithm.rawValue, "key": Self.rsaJWK, "value": ciphertext.base64URL]
        })
        let theirs = try CrossCheck.run(zip(algorithms, plaintexts).map { algorithm, plaintext in
            ["op": "rsa-encrypt", "alg": algorithm.rawValue, "key": Self.rsaJWK, "value": plaintext.base64URL]
        })
        for (index, algorithm) in algorithms.enumerated() {
            XCTAssertEqual([UInt8](base64URL: decrypted[index]["value"] as! String), plaintexts[index], "\(algorithm) by hsmd")
            let ciphertext = [UInt8](base64URL: theirs[index]["value"] as! String)
            XCTAssertEqual(try token.decrypt(Self.rsaID, algorithm: algorithm, ciphertext: ciphertext), plaintexts[index], "\(algorithm) to hsmd")
        }
    }

    func testRSAOAEP256HandlesEveryMessageLength() throws {
        for length in [0, 1, 100, 190] {
            let plaintext = [UInt8].random(length)
            let ciphertext = try token.encrypt(Self.rsaID, algorithm: .rsaOAEP256, plaintext: plaintext).value
            XCTAssertEqual(try token.decrypt(Self.rsaID, algorithm: .rsaOAEP256, ciphertext: ciphertext), plaintext)
        }
        XCTAssertThrowsError(try token.encrypt(Self.rsaID, algorithm: .rsaOAEP256, plaintext: .random(191))) { error in
            XCTAssertEqual(error as? TokenKeyError,
                           .invalidInput("RSA-OAEP-256 with a 2048-bit key encrypts at most 190 bytes; the value has 191"))
        }
    }

    func testBadRSACiphertextsFailUniformly() throws {
        for algorithm in [EncryptionAlgorithm.rsa1_5, .rsaOAEP, .rsaOAEP256] {
            var ciphertext = try token.encrypt(Self.rsaID, algorithm: algorithm, plaintext: .random(16)).value
            ciphertext[100] ^= 0x40
            XCTAssertThrowsError(try token.decrypt(Self.rsaID, algorithm: algorithm, ciphertext: ciphertext)) { error in
                XCTAssertEqual(error as? TokenKeyError, .decryptionFailed, "\(algorithm)")
            }
            // A ciphertext encrypted under another padding must fail the same way.
            let other: EncryptionAlgorithm = algorithm == .rsaOAEP256 ? .rsaOAEP : .rsaOAEP256
            let foreign = try token.encrypt(Self.rsaID, algorithm: other, plaintext: .random(16)).value
            XCTAssertThrowsError(try token.decrypt(Self.rsaID, algorithm: algorithm, ciphertext: foreign)) { error in
                XCTAssertEqual(error as? TokenKeyError, .decryptionFailed, "\(algorithm) given \(other)")
            }
        }
        XCTAssertThrowsError(try token.decrypt(Self.rsaID, algorithm: .rsaOAEP, ciphertext: .random(255))) { error in
            guard case .invalidInput = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
    }

    func testAESGCMInteroperatesWithAAD() throws {
        let (id, jwk) = try aesKey()
        let plaintext = [UInt8].random(1000)
        let aad = Array("context".utf8)
        let sealed = try token.encrypt(id, algorithm: .a256GCM, plaintext: plaintext, aad: aad)
        XCTAssertEqual(sealed.iv?.count, 12)
        XCTAssertEqual(sealed.tag?.count, 16)
        let opened = try CrossCheck.one(["op": "aes-decrypt", "mode": "gcm", "key": jwk, "value": sealed.value.base64URL,
                                         "iv": sealed.iv!.base64URL, "tag": sealed.tag!.base64URL, "aad": aad.base64URL])
        XCTAssertEqual([UInt8](base64URL: opened["value"] as! String), plaintext)

        let nonce = [UInt8].random(12)
        let theirs = try CrossCheck.one(["op": "aes-encrypt", "mode": "gcm", "key": jwk, "value": plaintext.base64URL,
                                         "iv": nonce.base64URL, "aad": aad.base64URL])
        let value = [UInt8](base64URL: theirs["value"] as! String)
        let tag = [UInt8](base64URL: theirs["tag"] as! String)
        XCTAssertEqual(try token.decrypt(id, algorithm: .a256GCM, ciphertext: value, iv: nonce, aad: aad, tag: tag), plaintext)

        var badTag = tag
        badTag[0] ^= 1
        for (ciphertext, tag, aad) in [(value, badTag, aad), (value, tag, aad + [0]), ([value[0] ^ 1] + value.dropFirst(), tag, aad)] {
            XCTAssertThrowsError(try token.decrypt(id, algorithm: .a256GCM, ciphertext: ciphertext, iv: nonce, aad: aad, tag: tag)) { error in
                XCTAssertEqual(error as? TokenKeyError, .decryptionFailed)
            }
        }
        XCTAssertNotEqual(try token.encrypt(id, algorithm: .a256GCM, plaintext: plaintext).iv, sealed.iv, "a fresh nonce each time")
    }

    func testAESCBCAndCBCPADInteroperate() throws {
        for bits in KeySpec.octSizes {
            let (id, jwk) = try aesKey(bits: bits)
            let iv = [UInt8].random(16)
            for (algorithm, mode, length) in [(EncryptionAlgorithm(rawValue: "A\(bits)CBC")!, "cbc", 64),
                                              (EncryptionAlgorithm(rawValue: "A\(bits)CBCPAD")!, "cbcpad", 61)] {
                let plaintext = [UInt8].random(length)
                let ours = try token.encrypt(id, algorithm: algorithm, plaintext: plaintext, iv: iv)
                let opened = try CrossCheck.one(["op": "aes-decrypt", "mode": mode, "key": jwk, "value": ours.value.base64URL, "iv": iv.base64URL])
                XCTAssertEqual([UInt8](base64URL: opened["value"] as! String), plaintext, "\(algorithm)")
                let theirs = try CrossCheck.one(["op": "aes-encrypt", "mode": mode, "key": jwk, "value": plaintext.base64URL, "iv": iv.base64URL])
                XCTAssertEqual(try token.decrypt(id, algorithm: algorithm, ciphertext: [UInt8](base64URL: theirs["value"] as! String), iv: iv),
                               plaintext, "\(algorithm)")
            }
        }
    }

    func testBadAESInputsAreTypedErrors() throws {
        let (id, _) = try aesKey(bits: 256)
        let iv = [UInt8].random(16)
        XCTAssertThrowsError(try token.encrypt(id, algorithm: .a256CBC, plaintext: .random(15), iv: iv)) { error in
            XCTAssertEqual(error as? TokenKeyError, .invalidInput("A256CBC plaintext must be a non-empty multiple of 16 bytes; it has 15"))
        }
        XCTAssertThrowsError(try token.decrypt(id, algorithm: .a256CBCPAD, ciphertext: .random(20), iv: iv)) { error in
            guard case .invalidInput = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try token.encrypt(id, algorithm: .a256CBC, plaintext: .random(16))) { error in
            XCTAssertEqual(error as? TokenKeyError, .invalidInput("A256CBC needs a 16-byte iv"))
        }
        XCTAssertThrowsError(try token.encrypt(id, algorithm: .a256GCM, plaintext: .random(16), iv: .random(12))) { error in
            guard case .invalidInput = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try token.decrypt(id, algorithm: .a256GCM, ciphertext: .random(16), iv: .random(12))) { error in
            XCTAssertEqual(error as? TokenKeyError, .invalidInput("A256GCM decryption needs the 16-byte tag that encryption returned"))
        }
        XCTAssertThrowsError(try token.encrypt(id, algorithm: .a128GCM, plaintext: .random(16))) { error in
            XCTAssertEqual(error as? TokenKeyError, .algorithmMismatch("A128GCM needs a 128-bit key; this key has 256 bits"))
        }
        XCTAssertThrowsError(try token.encrypt(Self.rsaID, algorithm: .a256GCM, plaintext: .random(16))) { error in
            guard case .algorithmMismatch = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try token.encrypt(id, algorithm: .rsaOAEP, plaintext: .random(16))) { error in
            guard case .algorithmMismatch = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        // A padding failure in CBC-PAD must look like any other decryption failure.
        let sealed = try token.encrypt(id, algorithm: .a256CBC, plaintext: [UInt8](repeating: 0x20, count: 32), iv: iv)
        XCTAssertThrowsError(try token.decrypt(id, algorithm: .a256CBCPAD, ciphertext: sealed.value, iv: iv)) { error in
            XCTAssertEqual(error as? TokenKeyError, .decryptionFailed)
        }
    }
}
