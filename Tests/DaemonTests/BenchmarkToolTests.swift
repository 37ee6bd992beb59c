import Foundation
import XCTest

/// `hsmd-bench --quick` against a real daemon, so the benchmark tool behind docs/BENCHMARKS.md
/// keeps working as hsmd changes.
final class BenchmarkToolTests: XCTestCase {
    static var benchTool: URL { DaemonProcess.binaries.appendingPathComponent("hsmd-bench") }

    func testAQuickRunMeasuresEveryOperationOnEveryPathAndCleansUp() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.benchTool.path) else {
            throw XCTSkip("no hsmd-bench at \(Self.benchTool.path): run `swift build` before `swift test`")
        }
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: stateDirectory) }
        // hsmd closes connections idle for a second: the tool's control connection, idle while the
        // workers measure, is closed under it and must be opened again (it once waited forever).
        let daemon = try DaemonProcess(stateDirectory: stateDirectory, arguments: ["--client-timeout-seconds", "1"])
        defer { daemon.stop() }

        let run = try runBenchTool(["--socket", daemon.socketPath, "--quick", "--output", "json"])
        XCTAssertEqual(run.status, 0, run.errors)
        let report = try JSONSerialization.jsonObject(with: run.output) as? [String: Any]
        let runs = try XCTUnwrap(report?["runs"] as? [[String: Any]], "no runs in: \(String(decoding: run.output, as: UTF8.self))")
        XCTAssertEqual(runs.map { $0["concurrency"] as? Int }, [2])
        let operations = try XCTUnwrap(runs.first?["operations"] as? [[String: Any]])
        XCTAssertEqual(
            operations.compactMap { $0["id"] as? String },
            ["rsa2048-rs256-sign", "p256-es256-sign", "aes256gcm-encrypt-1k", "get-key", "random-32"])
        for operation in operations {
            let id = operation["id"] as? String ?? "?"
            for path in ["socket", "direct"] {
                let measurement = try XCTUnwrap(operation[path] as? [String: Any], "\(id): no \(path) measurement")
                assertSane(measurement, "\(id) through \(path)")
            }
            XCTAssertGreaterThan(operation["socketOverDirect"] as? Double ?? 0, 0, id)
            // p11-kit 0.24's RPC carries no AES-GCM: the peer says so instead of measuring errors.
            if id == "aes256gcm-encrypt-1k" {
                XCTAssertNil(operation["peer"], id)
                XCTAssertNotNil(operation["peerUnavailable"], id)
            } else {
                assertSane(try XCTUnwrap(operation["peer"] as? [String: Any], "\(id): no peer measurement"), "\(id) through the peer")
            }
        }
        for id in ["rsa2048-rs256-sign", "p256-es256-sign", "aes256gcm-encrypt-1k"] {
            let openssl = operations.first { $0["id"] as? String == id }?["openssl"] as? [String: Any]
            XCTAssertGreaterThan(openssl?["opsPerSecond"] as? Double ?? 0, 0, "\(id): openssl speed baseline")
        }
        XCTAssertEqual(report?["cleanupFailures"] as? [String], [])

        // The run left no bench- key behind, live or deleted.
        for listing in ["/keys?api-version=7.6", "/deletedkeys?api-version=7.6"] {
            let body = String(decoding: try daemon.client.send(.GET, listing).body, as: UTF8.self)
            XCTAssertFalse(body.contains("/bench-"), "\(listing): \(body)")
        }
    }

    private func assertSane(_ measurement: [String: Any], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let number = { (key: String) in measurement[key] as? Double ?? -1 }
        XCTAssertEqual(measurement["errors"] as? Int, 0, "\(what): \(measurement["firstError"] ?? "")", file: file, line: line)
        XCTAssertGreaterThan(measurement["operations"] as? Int ?? 0, 0, what, file: file, line: line)
        XCTAssertGreaterThan(number("opsPerSecond"), 0, what, file: file, line: line)
        XCTAssertGreaterThan(number("p50Microseconds"), 0, what, file: file, line: line)
        XCTAssertLessThanOrEqual(number("p50Microseconds"), number("p99Microseconds"), what, file: file, line: line)
        XCTAssertLessThanOrEqual(number("p99Microseconds"), number("p999Microseconds"), what, file: file, line: line)
        XCTAssertLessThanOrEqual(number("p999Microseconds"), number("maxMicroseconds"), what, file: file, line: line)
        // Nothing in a quick run legitimately takes a second.
        XCTAssertLessThan(number("p50Microseconds"), 1_000_000, what, file: file, line: line)
    }

    private func runBenchTool(_ arguments: [String]) throws -> (status: Int32, output: Data, errors: String) {
        let streams = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-bench-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: streams, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: streams) }
        let (stdout, stderr) = (streams.appendingPathComponent("out"), streams.appendingPathComponent("err"))
        for file in [stdout, stderr] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        let process = Process()
        process.executableURL = Self.benchTool
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: stdout)
        process.standardError = try FileHandle(forWritingTo: stderr)
        try process.run()
        // A hung run fails the test instead of hanging the suite.
        let deadline = Date().addingTimeInterval(180)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("hsmd-bench did not finish within 180 s")
        }
        process.waitUntilExit()
        return (process.terminationStatus, try Data(contentsOf: stdout), String(decoding: try Data(contentsOf: stderr), as: UTF8.self))
    }
}
