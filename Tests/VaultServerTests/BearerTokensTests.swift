import Foundation
import Logging
import XCTest

@testable import Vault
@testable import VaultServer

/// hsmd's bearer tokens on a real token: what is accepted, and every way a token is refused.
final class BearerTokensTests: XCTestCase {
    private var directory: URL!
    private var token: VaultToken!
    private var lock: StateLock?
    private var tokens: BearerTokens!
    private let now: Int64 = 1_800_000_000

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-jwt-\(UUID().uuidString.prefix(8))")
        (token, lock) = try TokenProvisioner(directory: StateDirectory(path: directory.path), options: .init(), logger: Logger(label: "test")).open()
        tokens = try BearerTokens(
            token: token, issuer: "https://localhost:8443/tenant/v2.0", audiences: ["https://localhost:8443", "https://127.0.0.1:8443"])
    }

    override func tearDown() {
        token.close()
        lock = nil
        try? FileManager.default.removeItem(at: directory)
    }

    func testAnIssuedTokenNamesItsSubjectUntilItExpires() throws {
        let jwt = try tokens.issue(subject: "ci-signer", audience: "https://127.0.0.1:8443", lifetime: 600, now: now)
        XCTAssertEqual(try tokens.subject(of: jwt, now: now), "ci-signer")
        XCTAssertEqual(try tokens.subject(of: jwt, now: now + 600 + BearerTokens.clockSkew - 1), "ci-signer")
        XCTAssertThrowsError(try tokens.subject(of: jwt, now: now + 600 + BearerTokens.clockSkew)) { error in
            XCTAssertEqual("\(error)", "the bearer token has expired")
        }
        XCTAssertThrowsError(try tokens.subject(of: jwt, now: now - BearerTokens.clockSkew - 1)) { error in
            XCTAssertEqual("\(error)", "the bearer token is not valid yet")
        }
    }

    func testTheSigningKeyLivesInTheTokenAndSurvivesARestart() throws {
        let jwt = try tokens.issue(subject: "a", audience: "https://localhost:8443", lifetime: 600, now: now)
        token.close()
        lock = nil
        (token, lock) = try TokenProvisioner(directory: StateDirectory(path: directory.path), options: .init(), logger: Logger(label: "test")).open()
        let reopened = try BearerTokens(token: token, issuer: tokens.issuer, audiences: tokens.audiences)
        XCTAssertEqual(try reopened.subject(of: jwt, now: now), "a")
    }

    func testForgedForeignAndMalformedTokensAreRefused() throws {
        let jwt = try tokens.issue(subject: "a", audience: "https://localhost:8443", lifetime: 600, now: now)
        let parts = jwt.split(separator: ".").map(String.init)
        func refused(_ candidate: String, _ reason: String, line: UInt = #line) {
            XCTAssertThrowsError(try tokens.subject(of: candidate, now: now), line: line) { error in
                XCTAssertEqual("\(error)", reason, line: line)
            }
        }
        // Claims changed after signing: another subject.
        let forgedClaims = Base64URL.encode(Array(String(decoding: Base64URL.decode(parts[1])!, as: UTF8.self)
            .replacingOccurrences(of: "\"sub\":\"a\"", with: "\"sub\":\"uid:0\"").utf8))
        refused("\(parts[0]).\(forgedClaims).\(parts[2])", "the bearer token's signature is not hsmd's")
        refused("\(parts[0]).\(parts[1]).\(Base64URL.encode(Array(repeating: 7, count: 64)))", "the bearer token's signature is not hsmd's")
        let none = Base64URL.encode(Array("{\"alg\":\"none\"}".utf8))
        refused("\(none).\(parts[1]).", "the bearer token's signature is not hsmd's")
        refused("\(none).\(parts[1]).\(parts[2])", "the bearer token's signature is not hsmd's")
        refused("not-a-token", "the bearer token is not a JWT")

        let elsewhere = try BearerTokens(token: token, issuer: "https://other/tenant/v2.0", audiences: ["https://localhost:8443"])
        refused(try elsewhere.issue(subject: "a", audience: "https://localhost:8443", lifetime: 600, now: now), "the bearer token was issued by someone else")
        let otherAudience = try BearerTokens(token: token, issuer: tokens.issuer, audiences: ["https://vault.azure.net"])
        refused(try otherAudience.issue(subject: "a", audience: "https://vault.azure.net", lifetime: 600, now: now), "the bearer token is for another audience")
    }
}
