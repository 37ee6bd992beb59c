import Foundation
import XCTest

/// Runs requests through Tests/interop/crosscheck.py: Python's `cryptography`, an implementation
/// independent of the token, that checks what hsmd produced and produces what hsmd must accept.
enum CrossCheck {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("interop/crosscheck.py")

    static func run(_ requests: [[String: Any]], file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: requests))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "crosscheck.py failed", file: file, line: line)
        let answers = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]], file: file, line: line)
        for (index, answer) in answers.enumerated() {
            if let error = answer["error"] { XCTFail("crosscheck request \(index) failed: \(error)", file: file, line: line) }
        }
        return answers
    }

    static func one(_ request: [String: Any], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try run([request], file: file, line: line).first, file: file, line: line)
    }
}

extension Array where Element == UInt8 {
    var base64URL: String {
        Data(self).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    init(base64URL text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        self = Array(Data(base64Encoded: base64) ?? Data())
    }

    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in generator.next() }
    }
}
