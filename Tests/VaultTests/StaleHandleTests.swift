import CPKCS11
import PKCS11
import XCTest

@testable import Vault

/// Objects changed under a running hsmd, as another process could do against docs/pkcs11.md's rules:
/// the index's handles go stale, and hsmd must find the version again by label and id, or report it
/// missing, rather than fail obscurely.
final class StaleHandleTests: SharedTokenTestCase {

    func testAVersionWhoseObjectsWereReplacedIsFoundAgainByLabelAndID() throws {
        let id = try Self.fixture.newID("stale")
        try token.generate(id, spec: .ec(.p256), usage: [.sign, .verify])
        let replacementID = try Self.fixture.newID("replacement")
        let replacement = try token.generate(replacementID, spec: .ec(.p256), usage: [.sign, .verify])
        // Destroy the version's objects and give the replacement's objects its label and id.
        try token.pool.withSession { session in
            for object in try session.findObjects([.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)]) {
                try session.destroyObject(object)
            }
            for object in try session.findObjects([.bytes(CKA_LABEL, replacementID.label), .bytes(CKA_ID, replacementID.objectID)]) {
                try session.setAttributeValues(of: object, [.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)])
            }
        }
        let digest = [UInt8].random(32)
        let signature = try token.sign(id, algorithm: .es256, digest: digest)
        XCTAssertEqual(try token.key(id).publicKey, replacement.publicKey, "the index now holds the objects found again")
        XCTAssertTrue(try token.verify(id, algorithm: .es256, digest: digest, signature: signature))
    }

    func testAVersionWhoseObjectsWereDestroyedIsReportedMissing() throws {
        let id = try Self.fixture.newID("gone")
        try token.generate(id, spec: .ec(.p256), usage: [.sign, .verify])
        try token.pool.withSession { session in
            for object in try session.findObjects([.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)]) {
                try session.destroyObject(object)
            }
        }
        XCTAssertThrowsError(try token.sign(id, algorithm: .es256, digest: [UInt8].random(32))) { error in
            XCTAssertEqual(error as? TokenKeyError, .keyNotFound(id))
        }
        XCTAssertThrowsError(try token.key(id), "the index forgets it")
    }
}
