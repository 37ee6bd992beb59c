import CPKCS11
import PKCS11
import XCTest

@testable import Vault

/// Versions in use run on in-memory copies of their objects: copies must be as protected as the
/// originals, and must never outlive a change hsmd makes to the originals.
final class SessionKeyCopiesTests: SharedTokenTestCase {

    func testAUsedVersionRunsOnSessionCopiesAsProtectedAsItsObjects() throws {
        let id = try Self.fixture.newID("copied")
        let key = try token.generate(id, spec: .ec(.p256), usage: [.sign, .verify])
        let digest = [UInt8].random(32)
        let signature = try token.sign(id, algorithm: .es256, digest: digest)
        let copy = try XCTUnwrap(token.sessionCopies.copy(of: key), "the first use made a copy")
        XCTAssertNotEqual(copy.privateHandle, key.privateHandle)
        XCTAssertTrue(try token.verify(id, algorithm: .es256, digest: digest, signature: signature))
        try token.pool.withSession { session in
            let flags = try session.attributeValues(of: copy.privateHandle, [CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE])
            XCTAssertEqual(flags[CKA_TOKEN]?.asBool, false, "a session object: nothing written to the token's files")
            XCTAssertEqual(flags[CKA_PRIVATE]?.asBool, true)
            XCTAssertEqual(flags[CKA_SENSITIVE]?.asBool, true)
            XCTAssertThrowsError(try session.attributeValues(of: copy.privateHandle, [CKA_VALUE])) { error in
                XCTAssertEqual((error as? P11Error)?.code, CK_RV(CKR_ATTRIBUTE_SENSITIVE))
            }
        }
    }

    func testChangingAVersionsUsageForgetsItsCopies() throws {
        let id = try Self.fixture.newID("usage")
        try token.generate(id, spec: .ec(.p256), usage: [.sign, .verify])
        _ = try token.sign(id, algorithm: .es256, digest: [UInt8].random(32))
        try token.setUsage(id, [.verify])
        XCTAssertThrowsError(try token.sign(id, algorithm: .es256, digest: [UInt8].random(32)),
                             "the copy made while the version could sign is gone")
    }

    func testDestroyingAVersionDestroysItsCopies() throws {
        let id = try Self.fixture.newID("destroyed")
        let key = try token.generate(id, spec: .oct(bits: 256), usage: [.encrypt, .decrypt])
        _ = try token.encrypt(id, algorithm: .a256GCM, plaintext: [UInt8].random(16))
        let copy = try XCTUnwrap(token.sessionCopies.copy(of: key))
        try token.destroy(id)
        try token.pool.withSession { session in
            XCTAssertThrowsError(try session.attributeValues(of: copy.privateHandle, [CKA_CLASS]))
        }
    }

    func testSearchesByLabelAndIDFindTheTokenObjectsNeverTheCopies() throws {
        let id = try Self.fixture.newID("searched")
        let key = try token.generate(id, spec: .ec(.p256), usage: [.sign, .verify])
        _ = try token.sign(id, algorithm: .es256, digest: [UInt8].random(32))
        let copy = try XCTUnwrap(token.sessionCopies.copy(of: key))
        // A copy carries its original's label and id, and SoftHSM2 shows session objects to every session.
        let found = try token.pool.withSession { session in
            try token.tokenObjects(session, [.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)])
        }
        XCTAssertEqual(Set(found), [key.privateHandle, key.publicHandle!])
        let reread = try token.pool.withSession { session in
            try TokenIndexer(session: session).reread(id, excluding: token.sessionCopies.handles)
        }
        XCTAssertEqual(reread?.privateHandle, key.privateHandle)
        XCTAssertEqual(reread?.publicHandle, key.publicHandle)
        let unmanaged = try token.unmanagedObjects(excluding: [])
        XCTAssertFalse(unmanaged.contains { $0.handle == copy.privateHandle || $0.handle == copy.publicHandle },
                       "a copy is not an object of the token")
        try token.destroyAllObjects(of: id)
        try token.pool.withSession { session in
            XCTAssertEqual(try session.findObjects([.bytes(CKA_LABEL, id.label), .bytes(CKA_ID, id.objectID)]), [],
                           "the token objects are gone, not only the copies")
        }
    }

    func testNoCopiesAreMadeWhenTurnedOff() throws {
        let copies = SessionKeyCopies(owner: try token.module.openSession(slot: token.pool.slot), capacity: 0)
        defer { copies.close() }
        let key = try token.generate(try Self.fixture.newID("uncopied"), spec: .ec(.p256), usage: [.sign, .verify])
        XCTAssertNil(copies.copy(of: key))
        XCTAssertEqual(copies.count, 0)
    }

    func testTheOldestCopiesGoFirstAtCapacity() throws {
        let copies = SessionKeyCopies(owner: try token.module.openSession(slot: token.pool.slot), capacity: 2)
        defer { copies.close() }
        var made: [TokenKey] = []
        for name in ["first", "second", "third"] {
            let key = try token.generate(try Self.fixture.newID(name), spec: .ec(.p256), usage: [.sign, .verify])
            made.append(try XCTUnwrap(copies.copy(of: key)))
        }
        XCTAssertEqual(copies.count, 2)
        try token.pool.withSession { session in
            XCTAssertThrowsError(try session.attributeValues(of: made[0].privateHandle, [CKA_CLASS]), "the first copy was destroyed")
            XCTAssertNoThrow(try session.attributeValues(of: made[2].privateHandle, [CKA_CLASS]))
        }
    }
}
