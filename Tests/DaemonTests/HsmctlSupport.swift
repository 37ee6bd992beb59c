import Foundation
import XCTest

/// What one hsmctl run did. Output goes through files, so neither stream can fill a pipe and stall it.
struct HsmctlRun {
    let status: Int32
    let output: Data
    let errors: String

    var text: String { String(decoding: output, as: UTF8.self) }

    var json: [String: Any] {
        get throws {
            guard let object = try JSONSerialization.jsonObject(with: output) as? [String: Any] else {
                throw DaemonFailure(description: "hsmctl printed no JSON object: \(text)")
            }
            return object
        }
    }
}

/// A test class whose tests share one daemon on a fresh state directory, started before the first test
/// and stopped after the last; each test works in its own scratch directory.
class HsmctlTestCase: XCTestCase {
    nonisolated(unsafe) static var daemon: DaemonProcess!
    nonisolated(unsafe) static var stateDirectory: URL!
    var scratch: URL!

    /// Options for the shared daemon.
    class var daemonArguments: [String] { [] }

    override class func setUp() {
        super.setUp()
        stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-ctl-\(UUID().uuidString.prefix(8))")
        daemon = try! DaemonProcess(stateDirectory: stateDirectory, arguments: daemonArguments)
    }

    override class func tearDown() {
        daemon?.stop()
        daemon = nil
        try? FileManager.default.removeItem(at: stateDirectory)
        super.tearDown()
    }

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hsmctl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: scratch)
    }

    var socket: String { Self.daemon.socketPath }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    /// Runs hsmctl against the shared daemon (through $HSMD_SOCKET, as a user would set it).
    @discardableResult
    func hsmctl(_ arguments: String..., input: [UInt8]? = nil) throws -> HsmctlRun {
        try runHsmctl(arguments, input: input, environment: ["HSMD_SOCKET": socket], directory: scratch)
    }

    /// Runs hsmctl and fails the test unless it succeeds.
    @discardableResult
    func succeed(_ arguments: String..., input: [UInt8]? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> HsmctlRun {
        let run = try runHsmctl(arguments, input: input, environment: ["HSMD_SOCKET": socket], directory: scratch)
        XCTAssertEqual(run.status, 0, "hsmctl \(arguments.joined(separator: " ")): \(run.errors)", file: file, line: line)
        return run
    }

    /// Runs a tool other than hsmctl (openssl) in the scratch directory.
    @discardableResult
    func tool(_ executable: String, _ arguments: String...) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = scratch
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

func runHsmctl(_ arguments: [String], input: [UInt8]? = nil, environment: [String: String] = [:], directory: URL? = nil) throws -> HsmctlRun {
    let streams = FileManager.default.temporaryDirectory.appendingPathComponent("hsmctl-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: streams, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: streams) }
    let (stdin, stdout, stderr) = (streams.appendingPathComponent("in"), streams.appendingPathComponent("out"), streams.appendingPathComponent("err"))
    try Data(input ?? []).write(to: stdin)
    for file in [stdout, stderr] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }

    let process = Process()
    process.executableURL = DaemonProcess.hsmctl
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "HSMD_SOCKET" }.merging(environment) { $1 }
    if let directory { process.currentDirectoryURL = directory }
    process.standardInput = try FileHandle(forReadingFrom: stdin)
    process.standardOutput = try FileHandle(forWritingTo: stdout)
    process.standardError = try FileHandle(forWritingTo: stderr)
    try process.run()
    process.waitUntilExit()
    return HsmctlRun(
        status: process.terminationStatus, output: try Data(contentsOf: stdout),
        errors: String(decoding: try Data(contentsOf: stderr), as: UTF8.self))
}
