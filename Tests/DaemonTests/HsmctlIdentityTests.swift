import Foundation
import XCTest

/// hsmctl's HTTPS helpers: the CA, bearer tokens and OAuth2 clients.
final class HsmctlIdentityTests: HsmctlTestCase {
    static let port = Int.random(in: 20000...29999)
    override class var daemonArguments: [String] { ["--tls-port", "\(port)"] }

    func testTheCATokensAndClients() throws {
        let ca = try hsmctl("tls", "ca")
        XCTAssertEqual(ca.status, 0, ca.errors)
        XCTAssertTrue(ca.text.hasPrefix("-----BEGIN CERTIFICATE-----"), ca.text)

        let token = try hsmctl("token", "issue", "--principal", "ci-signer", "--ttl", "600")
        XCTAssertEqual(token.status, 0, token.errors)
        XCTAssertEqual(token.text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count, 3, "a compact JWS")
        XCTAssertEqual(try hsmctl("token", "issue", "--principal", "x", "--ttl", "5").status, 2, "a lifetime out of range is refused")

        let added = try hsmctl("client", "add", "--principal", "ci-signer", "--output", "json")
        XCTAssertEqual(added.status, 0, added.errors)
        let client = try added.json
        let id = try XCTUnwrap(client["clientId"] as? String)
        XCTAssertNotNil(client["clientSecret"] as? String)
        let listed = try hsmctl("client", "list")
        XCTAssertTrue(listed.text.contains(id) && listed.text.contains("ci-signer"), listed.text)
        XCTAssertFalse(listed.text.contains(client["clientSecret"] as! String), "secrets are shown once, at creation")
        XCTAssertEqual(try hsmctl("client", "remove", id).status, 0)
        XCTAssertEqual(try hsmctl("client", "remove", id).status, 5)
    }
}

final class HsmctlWithoutHTTPSTests: HsmctlTestCase {
    func testTheCAIsNotFoundWhenHTTPSIsOff() throws {
        let ca = try hsmctl("tls", "ca")
        XCTAssertEqual(ca.status, 5)
        XCTAssertTrue(ca.errors.contains("--tls-port"), ca.errors)
    }
}
