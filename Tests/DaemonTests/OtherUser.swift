import Foundation
import XCTest

/// Calls hsmd as another user: Tests/interop/socket_client.py under `setpriv`, with Debian's own
/// Python (the caller's may live where that user cannot read).
struct OtherUser {
    static let nobody = OtherUser(uid: 65534, gid: 65534)
    let uid: UInt32
    let gid: UInt32

    private static let client: URL = {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("interop/socket_client.py")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("hsmd-socket-client-\(getpid()).py")
        try? FileManager.default.removeItem(at: copy)
        try? FileManager.default.copyItem(at: source, to: copy)
        chmod(copy.path, 0o755)
        return copy
    }()

    struct Answer {
        let status: Int
        let body: [String: Any]?

        var innerCode: String? { ((body?["error"] as? [String: Any])?["innererror"] as? [String: Any])?["code"] as? String }
    }

    func send(_ socket: String, _ requests: [[String: Any]]) throws -> [Answer] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "/usr/bin/python3", Self.client.path]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: ["socket": socket, "requests": requests]))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let answers = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw DaemonFailure(description: "socket_client.py as uid \(uid) failed with \(process.terminationStatus)")
        }
        return answers.map { Answer(status: $0["status"] as? Int ?? 0, body: $0["body"] as? [String: Any]) }
    }
}
