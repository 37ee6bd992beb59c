import ArgumentParser
import Foundation

struct Random: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Get random bytes from the token's generator.",
        discussion: """
            Printed as hex, or written raw with --out-file.

            Examples:
              hsmctl random --count 32
              hsmctl random --count 32 --out-file seed.bin
            """)
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "How many bytes, 1 to 128.") var count: Int
    @OptionGroup var output: OutputBytes

    func validate() throws {
        guard (1...128).contains(count) else { throw ValidationError("--count is 1 to 128") }
    }

    func run() throws {
        let json = try connection.call(.POST, "/rng", body: ["count": count])
        let bytes = try OperationResult.bytes(json["value"] as? String ?? "")
        if output.path != nil || connection.output == .json {
            return try connection.emit(bytes, json: json, file: output.path) { "wrote \(count) random bytes to \($0)" }
        }
        print(Bytes.hexString(bytes))
    }
}
