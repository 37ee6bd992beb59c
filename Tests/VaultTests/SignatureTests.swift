import XCTest

@testable import Vault

/// Every signature algorithm, checked both ways against Python's `cryptography`.
final class SignatureTests: SharedTokenTestCase {

    private static let rsaAlgorithms: [SignatureAlgorithm] = [.rs256, .rs384, .rs512, .ps256, .ps384, .ps512]
    private static let ecAlgorithms: [(SignatureAlgorithm, Curve)] = [(.es256, .p256), (.es256k, .p256k), (.es384, .p384), (.es512, .p521)]

    func testHSMSignaturesVerifyIndependently() throws {
        var requests: [[String: Any]] = []
        var expectations: [String] = []
        for bits in [2048, 3072, 4096] {
            let id = try Self.fixture.newID("rsa")
            let key = try token.generate(id, spec: .rsa(bits: bits), usage: [.sign, .verify])
            for algorithm in Self.rsaAlgorithms {
                let digest = [UInt8].random(algorithm.hash.digestLength)
                let signature = try token.sign(id, algorithm: algorithm, digest: digest)
                XCTAssertEqual(signature.count, bits / 8)
                XCTAssertTrue(try token.verify(id, algorithm: algorithm, digest: digest, signature: signature))
                requests.append(["op": "verify", "alg": algorithm.rawValue, "key": key.publicKey!.jwk,
                                 "digest": digest.base64URL, "signature": signature.base64URL])
                expectations.append("\(algorithm.rawValue) RSA-\(bits)")
            }
        }
        for (algorithm, curve) in Self.ecAlgorithms {
            let id = try Self.fixture.newID("ec")
            let key = try token.generate(id, spec: .ec(curve), usage: [.sign, .verify])
            let digest = [UInt8].random(algorithm.hash.digestLength)
            let signature = try token.sign(id, algorithm: algorithm, digest: digest)
            XCTAssertEqual(signature.count, 2 * curve.coordinateSize, "raw r‖s, as JWS and Azure want")
            XCTAssertTrue(try token.verify(id, algorithm: algorithm, digest: digest, signature: signature))
            requests.append(["op": "verify", "alg": algorithm.rawValue, "key": key.publicKey!.jwk,
                             "digest": digest.base64URL, "signature": signature.base64URL])
            expectations.append("\(algorithm.rawValue) \(curve.rawValue)")
        }
        let answers = try CrossCheck.run(requests)
        for (answer, what) in zip(answers, expectations) {
            XCTAssertEqual(answer["valid"] as? Bool, true, "cryptography rejects hsmd's \(what) signature")
        }
    }

    func testIndependentSignaturesVerifyInTheHSM() throws {
        var cases: [(SignatureAlgorithm, [String: Any])] = []
        let rsaKey = try CrossCheck.one(["op": "generate", "kind": "rsa", "size": 2048])
        for algorithm in Self.rsaAlgorithms { cases.append((algorithm, rsaKey)) }
        for (algorithm, curve) in Self.ecAlgorithms {
            cases.append((algorithm, try CrossCheck.one(["op": "generate", "kind": "ec", "curve": curve.rawValue])))
        }
        let digests = cases.map { [UInt8].random($0.0.hash.digestLength) }
        let signatures = try CrossCheck.run(zip(cases, digests).map { testCase, digest in
            ["op": "sign", "alg": testCase.0.rawValue, "key": testCase.1, "digest": digest.base64URL]
        })
        var imported: [String: TokenKeyID] = [:]
        for ((algorithm, jwk), (digest, answer)) in zip(cases, zip(digests, signatures)) {
            let keyName = (jwk["n"] ?? jwk["x"]) as! String
            let id = try imported[keyName] ?? {
                let id = try Self.fixture.newID("imported")
                try token.importKey(id, material: importMaterial(jwk), usage: [.sign, .verify])
                return id
            }()
            imported[keyName] = id
            var signature = [UInt8](base64URL: answer["signature"] as! String)
            XCTAssertTrue(try token.verify(id, algorithm: algorithm, digest: digest, signature: signature), "\(algorithm)")
            signature[signature.count / 2] ^= 0x01
            XCTAssertFalse(try token.verify(id, algorithm: algorithm, digest: digest, signature: signature), "tampered \(algorithm)")
            XCTAssertFalse(try token.verify(id, algorithm: algorithm, digest: digest, signature: Array(signature.dropLast())))
        }
    }

    func testImportedKeysSignLikeTheOriginal() throws {
        let jwk = try CrossCheck.one(["op": "generate", "kind": "ec", "curve": "P-384"])
        let id = try Self.fixture.newID("imported")
        let key = try token.importKey(id, material: importMaterial(jwk), usage: [.sign, .verify])
        XCTAssertEqual(key.spec, .ec(.p384))
        let digest = [UInt8].random(48)
        let signature = try token.sign(id, algorithm: .es384, digest: digest)
        let publicJWK: [String: Any] = ["kty": "EC", "crv": "P-384", "x": jwk["x"]!, "y": jwk["y"]!]
        let answer = try CrossCheck.one(["op": "verify", "alg": "ES384", "key": publicJWK, "digest": digest.base64URL,
                                         "signature": signature.base64URL])
        XCTAssertEqual(answer["valid"] as? Bool, true)
    }

    func testHMACMatchesAnIndependentHMAC() throws {
        let jwk = try CrossCheck.one(["op": "generate", "kind": "oct", "size": 512])
        let id = try Self.fixture.newID("hmac")
        let key = try token.importKey(id, material: importMaterial(jwk), usage: [.sign, .verify])
        XCTAssertTrue(key.isHMACKey)
        let message = Array("header.payload".utf8)
        for algorithm in [SignatureAlgorithm.hs256, .hs384, .hs512] {
            let mac = try token.sign(id, algorithm: algorithm, digest: message)
            let theirs = try CrossCheck.one(["op": "hmac", "alg": algorithm.rawValue, "key": jwk, "value": message.base64URL])
            XCTAssertEqual(mac.base64URL, theirs["signature"] as? String, "\(algorithm)")
            XCTAssertTrue(try token.verify(id, algorithm: algorithm, digest: message, signature: mac))
            XCTAssertFalse(try token.verify(id, algorithm: algorithm, digest: message + [0], signature: mac))
        }
        let generated = try Self.fixture.newID("hmac")
        try token.generate(generated, spec: .oct(bits: 256), usage: [.sign, .verify])
        let mac = try token.sign(generated, algorithm: .hs256, digest: message)
        XCTAssertTrue(try token.verify(generated, algorithm: .hs256, digest: message, signature: mac))
        XCTAssertThrowsError(try token.sign(generated, algorithm: .hs384, digest: message)) { error in
            XCTAssertEqual(error as? TokenKeyError,
                           .algorithmMismatch("HS384 needs a key of at least 384 bits (RFC 7518 §3.2); this key is oct-256"))
        }
        XCTAssertThrowsError(try token.encrypt(generated, algorithm: .a256GCM, plaintext: message)) { error in
            guard case .algorithmMismatch = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try token.generate(Self.fixture.newID(), spec: .oct(bits: 128), usage: [.sign, .verify]))
    }

    func testAnOctKeyIsForHMACOrForAESNotBoth() throws {
        XCTAssertThrowsError(try token.generate(Self.fixture.newID(), spec: .oct(bits: 256), usage: [.sign, .encrypt])) { error in
            guard case .invalidInput = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        let aes = try Self.fixture.newID("aes")
        try token.generate(aes, spec: .oct(bits: 256), usage: .defaults(for: .oct(bits: 256)))
        XCTAssertThrowsError(try token.sign(aes, algorithm: .hs256, digest: [1, 2, 3])) { error in
            guard case .algorithmMismatch = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
    }

    func testAlgorithmMustFitTheKeyAndDigest() throws {
        let ec = try Self.fixture.newID("ec")
        try token.generate(ec, spec: .ec(.p256), usage: [.sign, .verify])
        let rsa = try Self.fixture.newID("rsa")
        try token.generate(rsa, spec: .rsa(bits: 2048), usage: [.sign, .verify])

        XCTAssertThrowsError(try token.sign(ec, algorithm: .es384, digest: .random(48))) { error in
            XCTAssertEqual(error as? TokenKeyError, .algorithmMismatch("ES384 needs a P-384 key; this key is on P-256"))
        }
        XCTAssertThrowsError(try token.sign(ec, algorithm: .rs256, digest: .random(32))) { error in
            XCTAssertEqual(error as? TokenKeyError, .algorithmMismatch("RS256 cannot be used with a EC P-256 key"))
        }
        XCTAssertThrowsError(try token.sign(rsa, algorithm: .es256, digest: .random(32))) { error in
            guard case .algorithmMismatch = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try token.sign(rsa, algorithm: .rs256, digest: .random(31))) { error in
            XCTAssertEqual(error as? TokenKeyError, .invalidInput("RS256 signs a 32-byte digest; the value has 31 bytes"))
        }
        XCTAssertThrowsError(try token.sign(ec, algorithm: .es256, digest: .random(64))) { error in
            guard case .invalidInput = error as? TokenKeyError else { return XCTFail("\(error)") }
        }
    }
}

extension SignatureTests {
    func testImportRefusesPartsOfDifferentKeys() throws {
        let one = try CrossCheck.one(["op": "generate", "kind": "ec", "curve": "P-256"])
        let other = try CrossCheck.one(["op": "generate", "kind": "ec", "curve": "P-256"])
        var mixed = one
        mixed["x"] = other["x"]
        mixed["y"] = other["y"]
        XCTAssertThrowsError(try token.importKey(Self.fixture.newID("mixed"), material: importMaterial(mixed), usage: [.verify])) { error in
            XCTAssertEqual(error as? TokenKeyError, .invalidInput("key: the private and public parts given do not belong to one key"))
        }
        var offCurve = one
        offCurve["y"] = one["x"]
        XCTAssertThrowsError(try token.importKey(Self.fixture.newID("off-curve"), material: importMaterial(offCurve), usage: [.sign]))

        let rsa = try CrossCheck.one(["op": "generate", "kind": "rsa", "size": 2048])
        let rsaOther = try CrossCheck.one(["op": "generate", "kind": "rsa", "size": 2048])
        var rsaMixed = rsa
        rsaMixed["n"] = rsaOther["n"]
        let id = try Self.fixture.newID("rsa-mixed")
        XCTAssertThrowsError(try token.importKey(id, material: importMaterial(rsaMixed), usage: [.encrypt, .decrypt]))
        XCTAssertThrowsError(try token.key(id), "nothing of a refused import stays in the token")
    }
}
