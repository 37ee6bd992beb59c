import ArgumentParser
import Foundation

/// Binary values as the API spells them (base64url, unpadded) and as people type them (hex or base64).
enum Bytes {
    static func base64URL(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        text = text.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    /// Base64 in either alphabet, padded or not.
    static func base64(_ text: String) -> [UInt8]? {
        var base64 = text.trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.hasSuffix("=") { base64.removeLast() }
        guard base64.utf8.count % 4 != 1 else { return nil }
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        return Data(base64Encoded: base64).map(Array.init)
    }

    static func hex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    static func hexString(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Hex or base64, whichever the text is. Text that could be either (`deadbeef`) is read as hex,
    /// unless only its base64 reading has the length the caller expects.
    static func hexOrBase64(_ text: String, expectedCount: Int? = nil) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let asHex = hex(trimmed)
        let asBase64 = base64(trimmed)
        if let expectedCount, asHex?.count != expectedCount, asBase64?.count == expectedCount { return asBase64 }
        return asHex ?? asBase64
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Where a command's input bytes come from: `--value` (base64), `--file`, or standard input.
struct InputBytes: ParsableArguments {
    // Unconditional: base64url values may start with "-".
    @Option(parsing: .unconditional, help: ArgumentHelp("The input as base64 or base64url.", valueName: "BASE64"))
    var value: String?

    @Option(help: ArgumentHelp("Read the input from this file (raw bytes).", valueName: "PATH"), completion: .file())
    var file: String?

    func validate() throws {
        if value != nil && file != nil { throw ValidationError("give --value or --file, not both") }
    }

    /// Standard input is read when neither option is given, so commands compose in pipes.
    func read() throws -> [UInt8] {
        if let value {
            guard let bytes = Bytes.base64(value) else { throw CommandFailure.exit("--value is not base64", code: CommandFailure.usage) }
            return bytes
        }
        if let file { return try readFile(file) }
        guard isatty(STDIN_FILENO) == 0 else {
            throw CommandFailure.exit("no input: give --value or --file, or pipe the bytes in", code: CommandFailure.usage)
        }
        return Array(FileHandle.standardInput.readDataToEndOfFile())
    }
}

/// Where a command's output bytes go: `--out-file`, or standard output.
struct OutputBytes: ParsableArguments {
    @Option(name: .customLong("out-file"), help: ArgumentHelp("Write the output here (raw bytes) instead of to standard output.", valueName: "PATH"),
            completion: .file())
    var path: String?
}

extension ConnectionOptions {
    /// A byte-producing command's last step. For people: the bytes to the file (with a line saying so)
    /// or to stdout. For scripts (--output json): the API's JSON on stdout, and the bytes to the file if one is named.
    func emit(_ bytes: [UInt8], json: [String: Any], file: String?, summary: (String) -> String) throws {
        if output == .json {
            if let file { try writeFile(file, bytes) }
            printJSON(json)
        } else if let file {
            try writeFile(file, bytes)
            print(summary(file))
        } else {
            FileHandle.standardOutput.write(Data(bytes))
        }
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandFailure.exit("cannot read \(path)", code: CommandFailure.usage)
    }
    return Array(data)
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    do {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    } catch {
        throw CommandFailure.exit("cannot write \(path): \(error.localizedDescription)", code: CommandFailure.usage)
    }
}
