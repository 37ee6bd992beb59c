import Foundation
import HSMClient
import XCTest

/// A real hsmd process on a temporary state directory, as an operator would run it.
final class DaemonProcess {
    /// Where SwiftPM put the executables: beside the test bundle.
    static let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    static var hsmd: URL { binaries.appendingPathComponent("hsmd") }
    static var hsmctl: URL { binaries.appendingPathComponent("hsmctl") }

    let stateDirectory: URL
    let socketPath: String
    let process = Process()
    private let logFile: URL

    var client: HSMClient { HSMClient(socketPath: socketPath) }

    /// Starts hsmd and waits until it serves, or until it exits.
    init(stateDirectory: URL, socketPath: String? = nil, arguments: [String] = [], waitUntilServing: Bool = true) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.hsmd.path) else {
            throw XCTSkip("no hsmd at \(Self.hsmd.path): run `swift build` before `swift test` (make test does)")
        }
        self.stateDirectory = stateDirectory
        self.socketPath = socketPath ?? stateDirectory.appendingPathComponent("hsmd.sock").path
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-log-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = Self.hsmd
        process.arguments = ["--state-dir", stateDirectory.path] + (socketPath.map { ["--socket", $0] } ?? []) + arguments
        process.standardError = try FileHandle(forWritingTo: logFile)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        if waitUntilServing { try waitForSocket() }
    }

    private func waitForSocket() throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning {
                throw DaemonFailure(description: "hsmd exited with \(process.terminationStatus) before serving:\n\(log)")
            }
            if (try? client.send(.GET, "/health"))?.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw DaemonFailure(description: "hsmd did not serve within 30 s:\n\(log)")
    }

    /// Sends a signal and waits for the process to end; returns its exit status.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits for a process that should end by itself.
    func waitForExit(timeout: TimeInterval = 30) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// The log as JSON objects, one per line.
    var logLines: [[String: Any]] {
        log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: logFile)
    }
}

struct DaemonFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs hsmctl and captures what it prints.
func runHSMCtl(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = DaemonProcess.hsmctl
    process.arguments = arguments
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}
