import Foundation
import XCTest

/// hsmctl's failures: one line on stderr naming Azure's error code, nothing on stdout, and an exit code
/// per kind of failure, in both output modes.
final class HsmctlErrorTests: HsmctlTestCase {
    private func assertFails(
        _ run: HsmctlRun, _ status: Int32, _ prefix: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(run.status, status, run.errors, file: file, line: line)
        XCTAssertTrue(run.errors.hasPrefix(prefix), "stderr: \(run.errors)", file: file, line: line)
        XCTAssertTrue(run.output.isEmpty, "stdout: \(run.text)", file: file, line: line)
    }

    func testNotFoundInvalidAndConflictingRequests() throws {
        for output in ["table", "json"] {
            let missing = try hsmctl("key", "show", "no-such-key", "--output", output)
            assertFails(missing, 5, "hsmctl: KeyNotFound: ")
            XCTAssertEqual(missing.errors.split(separator: "\n").count, 1, "one line")
        }
        assertFails(try hsmctl("key", "recover", "no-such-key"), 5, "hsmctl: KeyNotFound: ")
        assertFails(try hsmctl("key", "create", "odd", "--kty", "EC-HSM", "--size", "4096"), 2, "hsmctl: BadParameter: ")
        assertFails(try hsmctl("key", "sign", "no-such-key", "--alg", "ES256", "--digest", String(repeating: "00", count: 32)), 5, "hsmctl: KeyNotFound")

        try succeed("key", "create", "gone", "--kty", "EC-HSM")
        try succeed("key", "delete", "gone")
        assertFails(try hsmctl("key", "create", "gone", "--kty", "EC-HSM"), 2, "hsmctl: Conflict (ObjectIsDeletedButRecoverable): ")

        try succeed("key", "create", "aes-only", "--kty", "oct-HSM")
        assertFails(try hsmctl("key", "download", "aes-only"), 2, "hsmctl: oct-HSM keys have no public key")
        try succeed("key", "create", "switched-off", "--kty", "EC-HSM", "--enabled", "false")
        assertFails(
            try hsmctl("key", "sign", "switched-off", "--alg", "ES256", "--digest", String(repeating: "00", count: 32), "--output", "json"),
            4, "hsmctl: Forbidden (KeyDisabled): ")
    }

    func testUsageErrors() throws {
        for arguments in [
            ["key", "show"],
            ["key", "show", "no/slashes"],
            ["key", "show", "k", "--version", "not-a-version"],
            ["key", "create", "k", "--expires", "next tuesday"],
            ["key", "create", "k", "--kty", "DSA"],
            ["key", "create", "k", "--tags", "no-equals-sign"],
            ["key", "sign", "k", "--alg", "ES256"],
            ["key", "sign", "k", "--alg", "RS256", "--digest", "00", "--signature-format", "der"],
            ["key", "verify", "k", "--alg", "ES256", "--digest", "00"],
            ["key", "encrypt", "k", "--alg", "RSA-OAEP", "--aad", "x"],
            ["key", "encrypt", "k", "--alg", "A256GCM", "--value", "AA", "--file", "x"],
            ["key", "backup", "k"],
            ["nonsense"],
        ] {
            let run = try run(arguments)
            XCTAssertEqual(run.status, 64, "\(arguments): \(run.errors)")
            XCTAssertTrue(run.output.isEmpty, "\(arguments)")
        }
        assertFails(try hsmctl("key", "sign", "k", "--alg", "ES256", "--file", "/no/such/file"), 64, "hsmctl: cannot read /no/such/file")
        assertFails(try hsmctl("key", "encrypt", "k", "--alg", "A256GCM", "--value", "***"), 64, "hsmctl: --value is not base64")
        let typing = try tool("/usr/bin/script", "-qec", "\(DaemonProcess.hsmctl.path) key encrypt k --alg A256GCM", "/dev/null")
        XCTAssertEqual(typing.status, 64, "no input to wait for on a terminal")
        XCTAssertTrue(typing.output.hasPrefix("hsmctl: no input: give --value or --file, or pipe the bytes in"), typing.output)
    }

    func testAnUnreachableDaemon() throws {
        let run = try runHsmctl(["key", "list"], environment: ["HSMD_SOCKET": "/nonexistent/hsmd.sock"])
        assertFails(run, 3, "hsmctl: cannot reach hsmd at /nonexistent/hsmd.sock")
        XCTAssertEqual(run.errors.split(separator: "\n").count, 1)
        let explicit = try runHsmctl(["status", "--socket", "/nonexistent/other.sock"], environment: ["HSMD_SOCKET": socket])
        assertFails(explicit, 3, "hsmctl: cannot reach hsmd at /nonexistent/other.sock")
    }

    /// A 5xx: the audit log cannot be written, so hsmd fails the request (500) and refuses the next (503).
    func testServerErrors() throws {
        let audit = Self.stateDirectory.appendingPathComponent("audit")
        let moved = Self.stateDirectory.appendingPathComponent("audit.moved")
        try FileManager.default.moveItem(at: audit, to: moved)
        try Data().write(to: audit)
        defer {
            try? FileManager.default.removeItem(at: audit)
            try? FileManager.default.moveItem(at: moved, to: audit)
            _ = try? hsmctl("key", "list")
        }
        assertFails(try hsmctl("key", "list"), 1, "hsmctl: AuditLogUnavailable: ")
        assertFails(try hsmctl("key", "list", "--output", "json"), 1, "hsmctl: AuditLogUnavailable: ")
    }

    private func run(_ arguments: [String]) throws -> HsmctlRun {
        try runHsmctl(arguments, environment: ["HSMD_SOCKET": socket], directory: scratch)
    }
}
