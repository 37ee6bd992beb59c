import Foundation
import XCTest

/// hsmctl's role commands against a real daemon, in both output modes, with their exit codes.
final class HsmctlRoleTests: XCTestCase {
    func testAssignListAndRemoveARole() throws {
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-roles-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: stateDirectory) }
        let daemon = try DaemonProcess(stateDirectory: stateDirectory)
        defer { daemon.stop() }
        let socket = ["--socket", daemon.socketPath]

        let definitions = try runHSMCtl(["role", "definitions"] + socket)
        XCTAssertEqual(definitions.status, 0, definitions.stderr)
        XCTAssertTrue(definitions.stdout.contains("Managed HSM Crypto Service Encryption User"), definitions.stdout)

        let assigned = try runHSMCtl(["role", "assign", "--role", "Managed HSM Crypto Auditor", "--principal", "uid:4242", "--scope", "/keys/payments"] + socket)
        XCTAssertEqual(assigned.status, 0, assigned.stderr)
        XCTAssertTrue(assigned.stdout.hasPrefix("assigned Managed HSM Crypto Auditor to uid:4242 at /keys/payments"), assigned.stdout)

        let listed = try runHSMCtl(["role", "list", "--scope", "/keys/payments"] + socket)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("uid:4242"), listed.stdout)
        XCTAssertTrue(listed.stdout.contains("Managed HSM Crypto Auditor"), listed.stdout)
        let json = try runHSMCtl(["role", "list", "--principal", "uid:4242", "--output", "json"] + socket)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual((parsed?["value"] as? [Any])?.count, 1)

        let removed = try runHSMCtl(["role", "remove", "--role", "Managed HSM Crypto Auditor", "--principal", "uid:4242", "--scope", "/keys/payments"] + socket)
        XCTAssertEqual(removed.status, 0, removed.stderr)
        let again = try runHSMCtl(["role", "remove", "--role", "Managed HSM Crypto Auditor", "--principal", "uid:4242", "--scope", "/keys/payments"] + socket)
        XCTAssertEqual(again.status, 5, "not found")
        let unknownRole = try runHSMCtl(["role", "assign", "--role", "No Such Role", "--principal", "uid:1"] + socket)
        XCTAssertEqual(unknownRole.status, 5)
        let badScope = try runHSMCtl(["role", "list", "--scope", "/secrets"] + socket)
        XCTAssertEqual(badScope.status, 64, "a usage error")
        let forbiddenInitial = try runHSMCtl(["role", "remove", "--role", "Managed HSM Crypto User", "--principal", "uid:0"] + socket)
        XCTAssertEqual(forbiddenInitial.status, 2, forbiddenInitial.stderr)
        XCTAssertTrue(forbiddenInitial.stderr.hasPrefix("hsmctl: BadParameter: the initial administrators"), forbiddenInitial.stderr)
    }
}
