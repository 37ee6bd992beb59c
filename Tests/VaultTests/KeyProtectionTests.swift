import CPKCS11
import PKCS11
import XCTest

@testable import Vault

/// Key material stays in the token: private attributes cannot be read, keys cannot be wrapped out
/// under any key but the domain key, and the domain key itself resists every bypass we know.
final class KeyProtectionTests: SharedTokenTestCase {

    private func assertRefused(
        _ expected: [CK_RV], _ what: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
    ) {
        XCTAssertThrowsError(try body(), what, file: file, line: line) { error in
            guard let error = error as? P11Error else { return XCTFail("\(what): \(error)", file: file, line: line) }
            XCTAssertTrue(expected.contains(error.code), "\(what): \(error.name)", file: file, line: line)
        }
    }

    private func keys() throws -> [TokenKey] {
        let rsaJWK = try CrossCheck.one(["op": "generate", "kind": "rsa", "size": 2048])
        let ecJWK = try CrossCheck.one(["op": "generate", "kind": "ec", "curve": "P-256"])
        let aesJWK = try CrossCheck.one(["op": "generate", "kind": "oct", "size": 256])
        return [
            try token.generate(Self.fixture.newID("rsa"), spec: .rsa(bits: 2048), usage: .defaults(for: .rsa(bits: 2048))),
            try token.generate(Self.fixture.newID("ec"), spec: .ec(.p256k), usage: [.sign, .verify]),
            try token.generate(Self.fixture.newID("aes"), spec: .oct(bits: 256), usage: .defaults(for: .oct(bits: 256))),
            try token.importKey(Self.fixture.newID("rsa-imported"), material: importMaterial(rsaJWK), usage: [.sign, .decrypt]),
            try token.importKey(Self.fixture.newID("ec-imported"), material: importMaterial(ecJWK), usage: [.sign]),
            try token.importKey(Self.fixture.newID("aes-imported"), material: importMaterial(aesJWK), usage: [.encrypt, .decrypt]),
        ]
    }

    private static func privateAttributes(of key: TokenKey) -> [CK_ATTRIBUTE_TYPE] {
        switch key.spec {
        case .rsa: [CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT]
        case .ec, .oct: [CKA_VALUE]
        }
    }

    func testPrivatePartsOfGeneratedAndImportedKeysCannotBeRead() throws {
        for key in try keys() {
            for attribute in Self.privateAttributes(of: key) {
                assertRefused([CKR_ATTRIBUTE_SENSITIVE], "\(key.spec) attribute 0x\(String(attribute, radix: 16))") {
                    _ = try token.pool.withSession { try $0.attributeValues(of: key.privateHandle, [attribute]) }
                }
            }
        }
    }

    func testKeysCannotBeWrappedOutOrMadeReadable() throws {
        let wrapping = try token.generate(Self.fixture.newID("kek"), spec: .oct(bits: 256), usage: [.wrapKey, .unwrapKey])
        for key in try keys() {
            try token.pool.withSession { session in
                assertRefused([CKR_KEY_NOT_WRAPPABLE, CKR_KEY_UNEXTRACTABLE], "C_WrapKey of \(key.spec)") {
                    _ = try session.wrapKey(Mechanism(CKM_AES_KEY_WRAP_PAD), wrappingKey: wrapping.privateHandle, key: key.privateHandle)
                }
                assertRefused([CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED], "clearing SENSITIVE on \(key.spec)") {
                    try session.setAttributeValues(of: key.privateHandle, [.bool(CKA_SENSITIVE, false)])
                }
                assertRefused([CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED], "clearing WRAP_WITH_TRUSTED on \(key.spec)") {
                    try session.setAttributeValues(of: key.privateHandle, [.bool(CKA_WRAP_WITH_TRUSTED, false)])
                }
                assertRefused([CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED, CKR_TEMPLATE_INCONSISTENT], "copying \(key.spec) as non-sensitive") {
                    _ = try session.copyObject(key.privateHandle, template: [.bool(CKA_TOKEN, false), .bool(CKA_SENSITIVE, false)])
                }
            }
        }
    }

    func testDomainKeyWrapsForBackupAndNothingElse() throws {
        let key = try token.generate(Self.fixture.newID("ec"), spec: .ec(.p256), usage: [.sign, .verify])
        try token.pool.withSession { session in
            let domain = try XCTUnwrap(session.findObjects([.string(CKA_LABEL, DomainKey.label)]).first)
            XCTAssertTrue(token.unmanagedObjects.contains(domain), "the domain key is not an hsmd key")

            // The backup path works: wrapped under the domain key, unwrapped as a protected key that signs.
            let blob = try session.wrapKey(Mechanism(CKM_AES_KEY_WRAP_PAD), wrappingKey: domain, key: key.privateHandle)
            let restored = try session.unwrapKey(
                Mechanism(CKM_AES_KEY_WRAP_PAD), unwrappingKey: domain, wrapped: blob,
                template: [.ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_EC)),
                           .bool(CKA_TOKEN, false), .bool(CKA_SENSITIVE, true), .bool(CKA_WRAP_WITH_TRUSTED, true),
                           .bool(CKA_SIGN, true)])
            let digest = [UInt8].random(32)
            let signature = try session.sign(Mechanism(CKM_ECDSA), key: restored, data: digest, capacity: 64)
            XCTAssertTrue(try token.verify(key.id, algorithm: .es256, digest: digest, signature: signature))
            try session.destroyObject(restored)

            // And nothing else does.
            assertRefused([CKR_TEMPLATE_INCONSISTENT, CKR_ATTRIBUTE_VALUE_INVALID], "unwrap as non-sensitive") {
                _ = try session.unwrapKey(
                    Mechanism(CKM_AES_KEY_WRAP_PAD), unwrappingKey: domain, wrapped: blob,
                    template: [.ulong(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY)), .ulong(CKA_KEY_TYPE, CK_ULONG(CKK_EC)),
                               .bool(CKA_TOKEN, false), .bool(CKA_SENSITIVE, false)])
            }
            assertRefused([CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_TYPE_INCONSISTENT], "decrypting a blob with the domain key") {
                _ = try session.decrypt(Mechanism(CKM_AES_ECB), key: domain, data: Array(blob.prefix(16)), capacity: 16)
            }
            assertRefused([CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED], "allowing decrypt on the domain key") {
                try session.setAttributeValues(of: domain, [.bool(CKA_DECRYPT, true)])
            }
            assertRefused([CKR_ACTION_PROHIBITED, CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT], "copying the domain key") {
                _ = try session.copyObject(domain, template: [.bool(CKA_TOKEN, false), .bool(CKA_DECRYPT, true)])
            }
            assertRefused([CKR_ACTION_PROHIBITED], "destroying the domain key") {
                try session.destroyObject(domain)
            }
            assertRefused([CKR_KEY_UNEXTRACTABLE, CKR_KEY_NOT_WRAPPABLE], "wrapping the domain key out") {
                _ = try session.wrapKey(Mechanism(CKM_AES_KEY_WRAP), wrappingKey: domain, key: domain)
            }
            assertRefused([CKR_ATTRIBUTE_SENSITIVE], "reading the domain key") {
                _ = try session.attributeValues(of: domain, [CKA_VALUE])
            }
        }
    }
}
