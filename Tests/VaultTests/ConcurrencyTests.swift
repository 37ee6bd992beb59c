import Foundation
import XCTest

@testable import Vault

/// Many threads on one token at once: each borrows a session of its own, and nothing fails.
final class ConcurrencyTests: XCTestCase {
    func testSixteenWorkersSignForSecondsWithoutAnError() throws {
        let fixture = try TokenFixture()
        defer { fixture.close() }
        let token = fixture.token
        let ec = try fixture.newID("ec")
        try token.generate(ec, spec: .ec(.p256), usage: [.sign, .verify])
        let rsa = try fixture.newID("rsa")
        try token.generate(rsa, spec: .rsa(bits: 2048), usage: [.sign, .verify])
        let aes = try fixture.newID("aes")
        try token.generate(aes, spec: .oct(bits: 256), usage: [.encrypt, .decrypt])

        let deadline = Date().addingTimeInterval(3)
        let failures = Counter()
        let operations = Counter()
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            while Date() < deadline {
                do {
                    let digest = [UInt8].random(32)
                    switch worker % 3 {
                    case 0:
                        let signature = try token.sign(ec, algorithm: .es256, digest: digest)
                        guard try token.verify(ec, algorithm: .es256, digest: digest, signature: signature) else { throw TokenKeyError.decryptionFailed }
                    case 1:
                        let signature = try token.sign(rsa, algorithm: .ps256, digest: digest)
                        guard try token.verify(rsa, algorithm: .ps256, digest: digest, signature: signature) else { throw TokenKeyError.decryptionFailed }
                    default:
                        let sealed = try token.encrypt(aes, algorithm: .a256GCM, plaintext: digest)
                        guard try token.decrypt(aes, algorithm: .a256GCM, ciphertext: sealed.value, iv: sealed.iv, tag: sealed.tag) == digest
                        else { throw TokenKeyError.decryptionFailed }
                    }
                    operations.increment()
                } catch {
                    failures.increment()
                }
            }
        }
        XCTAssertEqual(failures.value, 0)
        XCTAssertGreaterThan(operations.value, 16, "every worker got through")
        XCTAssertLessThanOrEqual(token.pool.openCount, 16, "one session per in-flight operation, reused after")
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() {
        lock.lock()
        count += 1
        lock.unlock()
    }

    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
