import Foundation

/// Runs `openssl speed` for the primitives the operations name, once per primitive and process count.
final class OpenSSLSpeed {
    struct Result: Encodable, Sendable {
        var primitive: String
        var opsPerSecond: Double
        /// `openssl speed -multi`: processes run side by side, their rates summed.
        var processes: Int
    }

    let executable: String
    let seconds: Int
    private var cache: [String: Result] = [:]

    init(executable: String, seconds: Int) {
        self.executable = executable
        self.seconds = seconds
    }

    /// Wall-clock (`-elapsed`) rates, like every other figure of the run. One process per worker up
    /// to the core count: more cannot run at once.
    func measure(_ primitive: OpenSSLPrimitive, processes: Int) throws -> Result {
        let key = "\(primitive.description)/\(processes)"
        if let cached = cache[key] { return cached }
        let multi = processes > 1 ? ["-multi", "\(processes)"] : []
        let output = try run(["speed", "-mr", "-elapsed", "-seconds", "\(seconds)"] + multi + primitive.arguments)
        // With -multi each child's line comes back prefixed "Got:"; the unprefixed line is the sum.
        let rate = output.split(separator: "\n").lazy
            .filter { $0.hasPrefix("+F") }
            .compactMap { primitive.opsPerSecond(fromResultFields: $0.split(separator: ":")) }
            .last
        guard let rate else {
            throw BenchError.run("openssl speed printed no result for \(primitive.description):\n\(output.suffix(500))")
        }
        let result = Result(primitive: primitive.description, opsPerSecond: rate, processes: processes)
        cache[key] = result
        return result
    }

    private func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError.run("openssl \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
