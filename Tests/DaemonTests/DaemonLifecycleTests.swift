import Foundation
import HSMClient
import XCTest

/// hsmd as a process: start, serve, refuse a second owner, stop cleanly, restart on its token.
final class DaemonLifecycleTests: XCTestCase {
    private var stateDirectory: URL!

    override func setUp() {
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-daemon-\(UUID().uuidString.prefix(8))")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: stateDirectory)
    }

    private func mode(_ path: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
    }

    private func health(_ daemon: DaemonProcess) throws -> [String: Any] {
        let response = try daemon.client.send(.GET, "/health")
        XCTAssertEqual(response.status, 200)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    func testServesHealthOnAPrivateSocketAndLogsOneReadyLine() throws {
        let daemon = try DaemonProcess(stateDirectory: stateDirectory)
        let response = try daemon.client.send(.GET, "/health")
        XCTAssertEqual(response.status, 200)
        XCTAssertNotNil(UUID(uuidString: response.header("x-ms-request-id") ?? ""), "every response carries a request id")
        let body = try health(daemon)
        XCTAssertEqual(body["status"] as? String, "ok")
        XCTAssertEqual((body["token"] as? [String: Any])?["label"] as? String, "hsmd")

        XCTAssertEqual(try mode(daemon.socketPath) & 0o7777 & ~0o660, 0, "the socket is 0660 at most")
        XCTAssertEqual(try mode(stateDirectory.path) & 0o077, 0, "the state directory is the daemon's alone")
        let ready = daemon.logLines.filter { $0["msg"] as? String == "ready" }
        XCTAssertEqual(ready.count, 1, daemon.log)
        XCTAssertEqual(ready.first?["socket"] as? String, daemon.socketPath)
        XCTAssertEqual(daemon.stop(), 0)
    }

    func testASecondDaemonOnTheSameStateDirectoryRefusesToStart() throws {
        let first = try DaemonProcess(stateDirectory: stateDirectory)
        let second = try DaemonProcess(stateDirectory: stateDirectory, waitUntilServing: false)
        XCTAssertEqual(second.waitForExit(), 1)
        XCTAssertTrue(second.log.contains("another hsmd (pid \(first.process.processIdentifier)) owns the state directory"), second.log)
        XCTAssertEqual(try first.client.send(.GET, "/health").status, 200, "the first keeps serving")
        XCTAssertEqual(first.stop(), 0)
    }

    func testSIGTERMStopsCleanlyAndARestartReusesTheToken() throws {
        let first = try DaemonProcess(stateDirectory: stateDirectory)
        let serial = (try health(first)["token"] as? [String: Any])?["serialNumber"] as? String
        XCTAssertEqual(first.stop(SIGTERM), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: first.socketPath), "the socket is removed")
        let messages = first.logLines.compactMap { $0["msg"] as? String }
        XCTAssertEqual(Array(messages.suffix(2)), ["stopping", "stopped"], first.log)

        let second = try DaemonProcess(stateDirectory: stateDirectory)
        XCTAssertEqual((try health(second)["token"] as? [String: Any])?["serialNumber"] as? String, serial)
        XCTAssertFalse(second.log.contains("provisioned a new token"), "the restart reused the token")
        XCTAssertEqual(second.stop(SIGINT), 0, "Ctrl-C stops it the same way")
    }

    func testAfterACrashTheDaemonStartsAgainOnItsStaleSocket() throws {
        let crashed = try DaemonProcess(stateDirectory: stateDirectory)
        crashed.stop(SIGKILL)
        XCTAssertTrue(FileManager.default.fileExists(atPath: crashed.socketPath), "a crash leaves the socket file")
        let restarted = try DaemonProcess(stateDirectory: stateDirectory)
        XCTAssertEqual(try restarted.client.send(.GET, "/health").status, 200)
        XCTAssertEqual(restarted.stop(), 0)
    }

    func testPINsNeverAppearInTheLog() throws {
        let daemon = try DaemonProcess(stateDirectory: stateDirectory)
        XCTAssertEqual(daemon.stop(), 0)
        for pinFile in ["pins/user.pin", "pins/so.pin"] {
            let pin = try String(contentsOf: stateDirectory.appendingPathComponent(pinFile), encoding: .utf8)
            XCTAssertEqual(pin.count, 32)
            XCTAssertFalse(daemon.log.contains(pin), "\(pinFile) leaked into the log")
        }
    }

    func testBadStartsFailWithAClearMessage() throws {
        let badModule = try DaemonProcess(stateDirectory: stateDirectory, arguments: ["--module", "/nonexistent/libp11.so"], waitUntilServing: false)
        XCTAssertEqual(badModule.waitForExit(), 1)
        XCTAssertTrue(badModule.log.contains("cannot load the PKCS#11 module /nonexistent/libp11.so"), badModule.log)

        let bothPINs = try DaemonProcess(
            stateDirectory: stateDirectory, arguments: ["--user-pin-file", "/x", "--user-pin-env", "X"], waitUntilServing: false)
        XCTAssertNotEqual(bothPINs.waitForExit(), 0)
        XCTAssertTrue(bothPINs.log.contains("--user-pin-file or --user-pin-env, not both"), bothPINs.log)
    }

    func testHsmctlReportsHealthAndUnreachableDaemons() throws {
        let daemon = try DaemonProcess(stateDirectory: stateDirectory)
        let table = try runHSMCtl(["health", "--socket", daemon.socketPath])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("status        ok"), table.stdout)
        let json = try runHSMCtl(["health", "--socket", daemon.socketPath, "--output", "json"])
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(parsed?["status"] as? String, "ok")
        XCTAssertEqual(daemon.stop(), 0)

        let unreachable = try runHSMCtl(["health", "--socket", daemon.socketPath])
        XCTAssertEqual(unreachable.status, 3)
        XCTAssertTrue(unreachable.stderr.hasPrefix("hsmctl: cannot reach hsmd at \(daemon.socketPath)"), unreachable.stderr)
        XCTAssertEqual(unreachable.stderr.split(separator: "\n").count, 1, "one line")
    }
}
