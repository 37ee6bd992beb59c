import CPKCS11
import Foundation
import XCTest

@testable import PKCS11

/// The wrapper against the real SoftHSM2 module, with a token of its own in a temporary directory.
final class PKCS11ModuleTests: XCTestCase {
    static let modulePath = "/usr/lib/softhsm/libsofthsm2.so"
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pkcs11-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("token"), withIntermediateDirectories: true)
        let config = "directories.tokendir = \(directory.path)/token\nobjectstore.backend = file\nlog.level = ERROR\n"
        try Data(config.utf8).write(to: directory.appendingPathComponent("softhsm2.conf"))
        setenv("SOFTHSM2_CONF", directory.appendingPathComponent("softhsm2.conf").path, 1)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: directory)
    }

    func testAMissingModuleIsAClearError() {
        XCTAssertThrowsError(try PKCS11Module(path: "/nonexistent/libnothing.so")) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot load the PKCS#11 module /nonexistent/libnothing.so"), "\(error)")
        }
        XCTAssertThrowsError(try PKCS11Module(path: "/lib/x86_64-linux-gnu/libm.so.6")) { error in
            XCTAssertTrue("\(error)".contains("not a PKCS#11 module"), "\(error)")
        }
    }

    func testInitialiseFindTokenBySlotLabelAndLogIn() throws {
        let module = try PKCS11Module(path: Self.modulePath)
        try module.initialize()
        defer { try? module.finalize() }
        XCTAssertEqual(try module.info().manufacturer, "SoftHSM")
        XCTAssertEqual(try module.info().cryptokiVersion, "2.40")

        let free = try XCTUnwrap(try module.freeSlot())
        try module.initToken(slot: free, soPIN: Array("so-pin-1234".utf8), label: "wrapper-test")
        let slot = try XCTUnwrap(try module.slot(withTokenLabel: "wrapper-test"), "found by label: SoftHSM2 renumbers slots")
        XCTAssertTrue(try module.tokenInfo(slot: slot).isInitialized)
        XCTAssertTrue(module.supportsMechanism(CKM_AES_GCM, slot: slot))
        XCTAssertFalse(module.supportsMechanism(0x7FFF_FFF0, slot: slot))

        let session = try module.openSession(slot: slot)
        defer { try? session.close() }
        XCTAssertThrowsError(try session.login(CK_USER_TYPE(CKU_SO), pin: Array("wrong-pin".utf8))) { error in
            XCTAssertEqual((error as? P11Error)?.name, "CKR_PIN_INCORRECT")
            XCTAssertEqual("\(error)", "C_Login failed: CKR_PIN_INCORRECT")
        }
        try session.login(CK_USER_TYPE(CKU_SO), pin: Array("so-pin-1234".utf8))
        try session.initUserPIN(Array("user-pin-1234".utf8))
        try session.logout()
        try session.login(CK_USER_TYPE(CKU_USER), pin: Array("user-pin-1234".utf8))

        let key = try session.generateKey(
            Mechanism(CKM_AES_KEY_GEN),
            template: [.ulong(CKA_VALUE_LEN, 32), .bool(CKA_TOKEN, false), .bool(CKA_ENCRYPT, true), .bool(CKA_DECRYPT, true),
                       .string(CKA_LABEL, "session-key")])
        let values = try session.attributeValues(of: key, [CKA_LABEL, CKA_VALUE_LEN, CKA_SENSITIVE])
        XCTAssertEqual(values[CKA_LABEL], Array("session-key".utf8))
        XCTAssertEqual(values[CKA_VALUE_LEN]?.asULong, 32)
        XCTAssertEqual(try session.findObjects([.string(CKA_LABEL, "session-key")]), [key])

        let iv = [UInt8](repeating: 7, count: 16)
        let plaintext = [UInt8](repeating: 42, count: 100)
        let ciphertext = try session.encrypt(Mechanism(CKM_AES_CBC_PAD, .bytes(iv)), key: key, data: plaintext, capacity: 4)
        XCTAssertEqual(ciphertext.count, 112, "the output buffer grows when the token asks for more")
        XCTAssertEqual(try session.decrypt(Mechanism(CKM_AES_CBC_PAD, .bytes(iv)), key: key, data: ciphertext, capacity: 112), plaintext)
        try session.destroyObject(key)
        XCTAssertEqual(try session.findObjects([.string(CKA_LABEL, "session-key")]), [])
    }

    func testSessionPoolLendsOneSessionPerOperation() throws {
        let module = try PKCS11Module(path: Self.modulePath)
        try module.initialize()
        defer { try? module.finalize() }
        let free = try XCTUnwrap(try module.freeSlot())
        try module.initToken(slot: free, soPIN: Array("so-pin-1234".utf8), label: "pool-test")
        let pool = SessionPool(module: module, slot: try XCTUnwrap(try module.slot(withTokenLabel: "pool-test")))
        let lent = try pool.withSession { outer in
            try pool.withSession { inner in
                XCTAssertNotEqual(outer.handle, inner.handle, "a borrowed session is never lent twice")
                return [outer.handle, inner.handle]
            }
        }
        XCTAssertEqual(pool.openCount, 2)
        XCTAssertTrue(lent.contains(try pool.withSession { $0.handle }), "an idle session is reused, not a new one opened")
        XCTAssertEqual(pool.openCount, 2)
        pool.closeAll()
        XCTAssertEqual(pool.openCount, 0)
    }

    func testReturnValuesKeepTheirStandardNames() {
        XCTAssertEqual(P11Error(CK_RV(CKR_ATTRIBUTE_SENSITIVE), in: "C_GetAttributeValue").name, "CKR_ATTRIBUTE_SENSITIVE")
        XCTAssertEqual(P11Error(CK_RV(CKR_KEY_NOT_WRAPPABLE), in: "C_WrapKey").description, "C_WrapKey failed: CKR_KEY_NOT_WRAPPABLE")
        XCTAssertEqual(P11Error(0x8000_0001, in: "C_Sign").name, "CKR_VENDOR_DEFINED+0x1")
    }
}
