import Foundation
import XCTest

/// `hsmctl status` for an initial administrator: the daemon, its token, the socket, and the caller's roles.
final class HsmctlStatusTests: HsmctlTestCase {
    func testStatusShowsTheDaemonAndYourRoles() throws {
        try succeed("key", "create", "counted", "--kty", "EC-HSM")
        let table = try succeed("status")
        XCTAssertTrue(table.text.hasPrefix("status        ok\nversion       hsmd "), table.text)
        XCTAssertTrue(table.text.contains("\nkey versions  1\n"), table.text)
        XCTAssertTrue(table.text.contains("\nlisteners     unix:\(socket)\n"), table.text)
        XCTAssertTrue(table.text.contains("\nyou           uid:\(getuid()) (gid:\(getgid()), uid:\(getuid()))\n"), table.text)
        XCTAssertNotNil(table.text.range(of: "\ntoken         hsmd \\(serial [0-9a-f]+, slot [0-9]+\\)\n", options: .regularExpression), table.text)
        XCTAssertTrue(table.text.contains("\nROLE "), table.text)
        for role in ["Managed HSM Administrator", "Managed HSM Crypto Officer", "Managed HSM Crypto User", "hsmd Monitoring Reader"] {
            XCTAssertNotNil(table.text.range(of: "\n\(role) +/ +uid:\(getuid())\n", options: .regularExpression), "\(role): \(table.text)")
        }

        let json = try succeed("status", "--output", "json").json
        XCTAssertEqual((json["health"] as? [String: Any])?["status"] as? String, "ok")
        XCTAssertEqual(json["listeners"] as? [String], ["unix:\(socket)"])
        let whoami = try XCTUnwrap(json["whoami"] as? [String: Any])
        XCTAssertEqual(whoami["principal"] as? String, "uid:\(getuid())")
        XCTAssertEqual((whoami["roles"] as? [Any])?.count, 4)
    }
}

/// A caller that holds no role: hsmd refuses it everything but health, and hsmctl says so.
final class HsmctlForbiddenTests: HsmctlTestCase {
    override class var daemonArguments: [String] { ["--admin", "uid:4242"] }

    func testACallerWithoutRolesIsForbiddenAndStatusSaysWhy() throws {
        let status = try succeed("status")
        XCTAssertTrue(status.text.contains("\nNo roles are assigned to uid:\(getuid()): hsmd refuses you everything but health."), status.text)
        let json = try succeed("status", "--output", "json").json
        XCTAssertEqual(((json["whoami"] as? [String: Any])?["roles"] as? [Any])?.count, 0)

        for arguments in [["key", "list"], ["key", "create", "mine", "--kty", "EC-HSM"], ["random", "--count", "8", "--output", "json"]] {
            let refused = try runHsmctl(arguments, environment: ["HSMD_SOCKET": socket])
            XCTAssertEqual(refused.status, 4, "\(arguments): \(refused.errors)")
            XCTAssertTrue(refused.errors.hasPrefix("hsmctl: Forbidden (ForbiddenByRbac): "), refused.errors)
        }
    }
}

/// Roles given to a name bound to the caller's gid reach it, and status shows them.
final class HsmctlBoundNameStatusTests: HsmctlTestCase {
    override class var daemonArguments: [String] { ["--principal", "ops=gid:\(getgid())"] }

    func testRolesOfABoundNameAreShown() throws {
        try succeed("role", "assign", "--role", "Managed HSM Crypto Auditor", "--principal", "ops", "--scope", "/keys")
        let table = try succeed("status")
        XCTAssertTrue(table.text.contains("ops"), table.text)
        XCTAssertNotNil(table.text.range(of: "\nManaged HSM Crypto Auditor +/keys +ops\n", options: .regularExpression), table.text)
    }
}
