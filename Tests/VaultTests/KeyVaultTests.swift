import CPKCS11
import Foundation
import Logging
import PKCS11
import Synchronization
import XCTest

@testable import Vault

/// The vault core on the real token: crash reconciliation, fixed settings, clocks, backups.
final class KeyVaultTests: XCTestCase {
    private var fixture: TokenFixture!
    private var storePath: URL { fixture.directory.appendingPathComponent("metadata.sqlite") }
    private let clock = ManualClock(1_800_000_000)

    override func setUpWithError() throws {
        fixture = try TokenFixture()
    }

    override func tearDown() {
        fixture.close()
    }

    private func openVault(_ settings: VaultSettings? = nil) throws -> KeyVault {
        let clock = self.clock
        return try KeyVault(token: fixture.token, storePath: storePath, settings: settings, logger: Logger(label: "test")) { clock.now }
    }

    private func objects(_ name: String, _ version: String) throws -> [ObjectHandle] {
        let id = TokenKeyID(stored: name, version: version)
        return try fixture.token.pool.withSession { try $0.findObjects([.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)]) }
    }

    func testACreationACrashInterruptedIsUndoneAtStart() throws {
        let vault = try openVault()
        // The state a crash leaves between "token object made" and "row made active".
        let version = try fixture.token.newVersion()
        let pending = KeyVersion(
            version: version, spec: .ec(.p256), isHMACKey: false, operations: [.sign],
            attributes: KeyAttributes(enabled: true, created: 1, updated: 1), tags: [:], publicKey: nil)
        try vault.store.insertPending(name: "half-made", version: pending)
        try fixture.token.generate(TokenKeyID(stored: "half-made", version: version), spec: .ec(.p256), usage: [.sign])
        XCTAssertEqual(try objects("half-made", version).count, 2)

        let reopened = try openVault()
        XCTAssertEqual(try objects("half-made", version), [], "no orphaned token object")
        XCTAssertThrowsError(try reopened.getKey("half-made", version: nil)) { error in
            guard case .keyNotFound = error as? VaultError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try reopened.store.loadAll().pending.count, 0)
    }

    func testAPurgeACrashInterruptedIsFinishedAtStart() throws {
        let vault = try openVault()
        let bundle = try vault.createKey("doomed", KeyCreation(type: .ec))
        _ = try vault.deleteKey("doomed")
        try vault.store.markPurging(name: "doomed")

        let reopened = try openVault()
        XCTAssertEqual(try objects("doomed", bundle.version.version), [])
        XCTAssertThrowsError(try reopened.getDeletedKey("doomed"))
        XCTAssertNoThrow(try reopened.createKey("doomed", KeyCreation(type: .ec)), "the name is free again")
    }

    func testAKeyWhoseMaterialIsGoneIsKeptAndFailsLoudly() throws {
        let vault = try openVault()
        let bundle = try vault.createKey("lost", KeyCreation(type: .ec))
        try fixture.token.destroy(TokenKeyID(stored: "lost", version: bundle.version.version))

        let reopened = try openVault()
        XCTAssertEqual(try reopened.getKey("lost", version: nil).version.publicKey, bundle.version.publicKey,
                       "metadata and public key survive")
        XCTAssertThrowsError(try reopened.sign("lost", version: nil, algorithm: .es256, digest: .random(32))) { error in
            guard case .materialMissing(let message) = error as? VaultError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("key lost version \(bundle.version.version)"), message)
        }
    }

    func testTokenObjectsWithoutMetadataAreLeftAlone() throws {
        _ = try openVault()
        let stray = try fixture.newID("stray")
        try fixture.token.generate(stray, spec: .ec(.p256), usage: [.sign])
        _ = try openVault()
        XCTAssertEqual(try objects(stray.name, stray.version).count, 2, "hsmd never destroys what it did not record")
    }

    func testSettingsAreFixedAtTheFirstOpen() throws {
        let vault = try openVault(VaultSettings(retentionDays: 30, purgeProtection: true))
        XCTAssertEqual(vault.settings.recoveryLevel, "CustomizedRecoverable")
        XCTAssertEqual(try openVault().settings, VaultSettings(retentionDays: 30, purgeProtection: true))
        XCTAssertThrowsError(try openVault(VaultSettings(retentionDays: 90))) { error in
            XCTAssertTrue("\(error)".contains("fixed for its life"), "\(error)")
        }
    }

    func testDeletedKeysArePurgedOnTheirScheduledDate() throws {
        let vault = try openVault(VaultSettings(retentionDays: 7, purgeProtection: true))
        let bundle = try vault.createKey("short-lived", KeyCreation(type: .oct))
        let deleted = try vault.deleteKey("short-lived")
        XCTAssertEqual(deleted.deletion?.scheduledPurgeDate, clock.now + 7 * 86_400)
        XCTAssertThrowsError(try vault.purgeDeletedKey("short-lived")) { error in
            XCTAssertEqual((error as? VaultError).map { if case .forbidden(let code, _) = $0 { code } else { "" } }, "PurgeProtected")
        }
        clock.advance(7 * 86_400 - 1)
        XCTAssertEqual(vault.purgeExpiredKeys(), 0)
        clock.advance(1)
        XCTAssertEqual(vault.purgeExpiredKeys(), 1)
        XCTAssertEqual(try objects("short-lived", bundle.version.version), [])
        XCTAssertThrowsError(try vault.getDeletedKey("short-lived"))
    }

    func testValidityWindowFollowsTheClock() throws {
        let vault = try openVault()
        var creation = KeyCreation(type: .ec)
        creation.attributes = AttributeInput(notBefore: clock.now + 100, expires: clock.now + 200)
        _ = try vault.createKey("windowed", creation)
        let digest = [UInt8].random(32)
        XCTAssertThrowsError(try vault.sign("windowed", version: nil, algorithm: .es256, digest: digest)) { error in
            XCTAssertEqual((error as? VaultError).map { if case .forbidden(let code, _) = $0 { code } else { "" } }, "KeyNotYetValid")
        }
        clock.advance(100)
        let (_, signature) = try vault.sign("windowed", version: nil, algorithm: .es256, digest: digest)
        clock.advance(100)
        XCTAssertThrowsError(try vault.sign("windowed", version: nil, algorithm: .es256, digest: digest)) { error in
            XCTAssertEqual((error as? VaultError).map { if case .forbidden(let code, _) = $0 { code } else { "" } }, "KeyExpired")
        }
        XCTAssertTrue(try vault.verify("windowed", version: nil, algorithm: .es256, digest: digest, signature: signature),
                      "verify still works outside the window")
    }

    func testABackupFromAnotherDomainIsRefused() throws {
        let vault = try openVault()
        _ = try vault.createKey("traveller", KeyCreation(type: .rsa))
        let blob = try vault.backupKey("traveller")
        fixture.close()

        fixture = try TokenFixture()
        let foreign = try openVault()
        XCTAssertThrowsError(try foreign.restoreKey(blob)) { error in
            guard case .badParameter(let message) = error as? VaultError else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("another security domain"), message)
        }
        XCTAssertEqual(fixture.token.keyCount, 0, "nothing was unwrapped")
    }

    func testRestoreBringsBackEveryVersionAndItsMaterial() throws {
        let vault = try openVault()
        let first = try vault.createKey("multi", KeyCreation(type: .rsa))
        let second = try vault.rotateKey("multi")
        let blob = try vault.backupKey("multi")
        XCTAssertThrowsError(try vault.restoreKey(blob)) { error in
            guard case .conflict = error as? VaultError else { return XCTFail("\(error)") }
        }
        _ = try vault.deleteKey("multi")
        try vault.purgeDeletedKey("multi")

        let restored = try vault.restoreKey(blob)
        XCTAssertEqual(restored.version.version, second.version.version)
        XCTAssertEqual(try vault.listVersions("multi", maxResults: 25, after: nil).items.map(\.version.version),
                       [first.version.version, second.version.version])
        let digest = [UInt8].random(32)
        let (_, signature) = try vault.sign("multi", version: first.version.version, algorithm: .ps256, digest: digest)
        XCTAssertTrue(try vault.verify("multi", version: first.version.version, algorithm: .ps256, digest: digest, signature: signature))

        var tampered = blob
        tampered[tampered.count / 2] ^= 0x01
        XCTAssertThrowsError(try vault.restoreKey(tampered)) { error in
            guard case .badParameter = error as? VaultError else { return XCTFail("\(error)") }
        }
    }
}

final class ManualClock: Sendable {
    private let seconds: Mutex<Int64>

    init(_ start: Int64) {
        seconds = Mutex(start)
    }

    var now: Int64 { seconds.withLock { $0 } }

    func advance(_ delta: Int64) {
        seconds.withLock { $0 += delta }
    }
}

extension KeyVaultTests {
    func testEveryKeyKindSurvivesBackupAndRestore() throws {
        let vault = try openVault()
        var kinds: [(String, KeyCreation, SignatureAlgorithm?)] = []
        for curve in Curve.allCases {
            var creation = KeyCreation(type: .ec)
            creation.curve = curve.rawValue
            let algorithm: SignatureAlgorithm = switch curve {
            case .p256: .es256
            case .p256k: .es256k
            case .p384: .es384
            case .p521: .es512
            }
            kinds.append(("ec-\(curve.coordinateSize)-\(curve == .p256k ? "k" : "r")", creation, algorithm))
        }
        var hmac = KeyCreation(type: .oct)
        hmac.operations = ["sign", "verify"]
        kinds.append(("hmac", hmac, .hs256))
        kinds.append(("aes", KeyCreation(type: .oct), nil))
        for (name, creation, algorithm) in kinds {
            let original = try vault.createKey(name, creation)
            let blob = try vault.backupKey(name)
            _ = try vault.deleteKey(name)
            try vault.purgeDeletedKey(name)
            let restored = try vault.restoreKey(blob)
            XCTAssertEqual(restored.version, original.version, name)
            if let algorithm {
                let digest = [UInt8].random(algorithm == .es512 ? 64 : algorithm == .es384 ? 48 : 32)
                let (_, signature) = try vault.sign(name, version: nil, algorithm: algorithm, digest: digest)
                XCTAssertTrue(try vault.verify(name, version: nil, algorithm: algorithm, digest: digest, signature: signature), name)
            } else {
                let (_, sealed) = try vault.encrypt(name, version: nil, algorithm: .a256GCM, plaintext: [1, 2, 3], iv: nil, aad: nil)
                XCTAssertEqual(try vault.decrypt(name, version: nil, algorithm: .a256GCM, ciphertext: sealed.value, iv: sealed.iv, aad: nil, tag: sealed.tag).1, [1, 2, 3])
            }
        }
    }
}

extension KeyVaultTests {
    func testAnAdoptionACrashInterruptedGivesTheObjectsTheirNamesBack() throws {
        let vault = try openVault()
        try fixture.token.pool.withSession { session in
            _ = try session.generateKeyPair(
                Mechanism(CKM_EC_KEY_PAIR_GEN),
                publicTemplate: [.string(CKA_LABEL, "old"), .bytes(CKA_ID, [0x0a, 0x0b]), .bool(CKA_TOKEN, true), .bool(CKA_VERIFY, true),
                                 .bytes(CKA_EC_PARAMS, Curve.p256.ecParameters)],
                privateTemplate: [.string(CKA_LABEL, "old"), .bytes(CKA_ID, [0x0a, 0x0b]), .bool(CKA_TOKEN, true), .bool(CKA_SIGN, true),
                                  .bool(CKA_SENSITIVE, true), .bool(CKA_EXTRACTABLE, false)])
        }
        let objects = try vault.unmanagedObjects().filter { $0.idHex == "0a0b" }
        XCTAssertEqual(objects.count, 2)
        // The state a crash leaves between relabelling and activation.
        let version = try fixture.token.newVersion()
        try vault.store.insertPending(name: "adopted", version: KeyVersion(
            version: version, spec: .ec(.p256), isHMACKey: false, operations: [.sign, .verify],
            attributes: KeyAttributes(enabled: true, created: 1, updated: 1), tags: [KeyVault.adoptedFromTag: "old|0a0b"], publicKey: nil))
        _ = try fixture.token.adopt(objects, as: TokenKeyID(stored: "adopted", version: version))

        let reopened = try openVault()
        XCTAssertThrowsError(try reopened.getKey("adopted", version: nil))
        XCTAssertEqual(try reopened.unmanagedObjects().filter { $0.label == "old" && $0.idHex == "0a0b" }.count, 2,
                       "the objects have their old names back, untouched")
        let bundle = try reopened.adoptKey("adopted", objectID: "0a0b", label: nil, force: false)
        XCTAssertEqual(bundle.version.tags[KeyVault.adoptedFromTag], "old|0a0b")
        XCTAssertThrowsError(try reopened.backupKey("adopted")) { error in
            guard case .conflict = error as? VaultError else { return XCTFail("\(error)") }
        }
    }
}
