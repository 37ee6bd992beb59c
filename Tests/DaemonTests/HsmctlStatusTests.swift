import Foundation
import XCTest

/// `hsmctl status` for an initial administrator: the daemon, its token, the socket, and the caller's roles.
final class HsmctlStatusTests: HsmctlTestCase {
    func testStatusShowsTheDaemonAndYourRoles() throws {
        try succeed("key", "create", "counted", "--kty", "EC-HSM")
        let table = try succeed("status")
        XCTAssertTrue(table.text.hasPrefix("status        ok\nversion       hsmd "), table.text)
        XCTAssertTrue(table.text.contains("\nkey versions  1\n"), table.text)
        XCTAssertTrue(table.text.contains("\nlistener      unix:\(socket)\n"), table.text)
        XCTAssertTrue(table.text.contains("\nyou           uid:\(getuid()), gid:\(getgid())\n"), table.text)
        XCTAssertTrue(table.text.contains("\nROLE "), table.text)
        for role in ["Managed HSM Administrator", "Managed HSM Crypto Officer", "Managed HSM Crypto User"] {
            XCTAssertNotNil(table.text.range(of: "\n\(role) +/ +uid:\(getuid())\n", options: .regularExpression), "\(role): \(table.text)")
        }

        let json = try succeed("status", "--output", "json").json
        XCTAssertEqual((json["health"] as? [String: Any])?["status"] as? String, "ok")
        XCTAssertEqual(json["listeners"] as? [String], ["unix:\(socket)"])
        XCTAssertEqual(json["principals"] as? [String], ["uid:\(getuid())", "gid:\(getgid())"])
        XCTAssertEqual((json["roleAssignments"] as? [Any])?.count, 3)
    }
}

/// A caller that holds no role: hsmd refuses it everything but health, and hsmctl says so.
final class HsmctlForbiddenTests: HsmctlTestCase {
    override class var daemonArguments: [String] { ["--admin", "uid:4242"] }

    func testACallerWithoutRolesIsForbiddenAndStatusSaysWhy() throws {
        let status = try succeed("status")
        XCTAssertTrue(status.text.contains("\nYour roles cannot be listed: Forbidden (ForbiddenByRbac): "), status.text)
        let json = try succeed("status", "--output", "json").json
        XCTAssertNil(json["roleAssignments"])
        XCTAssertTrue((json["roleAssignmentsError"] as? String)?.hasPrefix("Forbidden (ForbiddenByRbac)") == true, "\(json)")

        for arguments in [["key", "list"], ["key", "create", "mine", "--kty", "EC-HSM"], ["random", "--count", "8", "--output", "json"]] {
            let refused = try runHsmctl(arguments, environment: ["HSMD_SOCKET": socket])
            XCTAssertEqual(refused.status, 4, "\(arguments): \(refused.errors)")
            XCTAssertTrue(refused.errors.hasPrefix("hsmctl: Forbidden (ForbiddenByRbac): "), refused.errors)
        }
    }
}
