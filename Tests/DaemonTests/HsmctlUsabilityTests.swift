import Foundation
import XCTest

/// What makes hsmctl pleasant beyond its commands: help with examples everywhere, shell completion
/// (key names included), exit codes documented.
final class HsmctlUsabilityTests: HsmctlTestCase {
    func testEveryCommandHasHelpWithAnExample() throws {
        let dump = try succeed("--experimental-dump-help").json
        var commands: [(path: String, discussion: String)] = []
        func walk(_ command: [String: Any], _ path: String) {
            commands.append((path, command["discussion"] as? String ?? ""))
            for subcommand in command["subcommands"] as? [[String: Any]] ?? [] where subcommand["commandName"] as? String != "help" {
                walk(subcommand, path + " " + (subcommand["commandName"] as? String ?? "?"))
            }
        }
        walk(try XCTUnwrap(dump["command"] as? [String: Any]), "hsmctl")
        XCTAssertGreaterThan(commands.count, 30)
        for command in commands {
            XCTAssertTrue(command.discussion.contains("Examples:\n  hsmctl "), "\(command.path) --help has no example")
        }
        let help = try succeed("key", "sign", "--help")
        XCTAssertTrue(help.text.contains("hsmctl key sign payments --alg ES256 --file bill.pdf"), help.text)
        XCTAssertTrue(help.text.contains("(values: RS256, RS384"), "algorithms are listed: \(help.text)")
        XCTAssertTrue(try succeed("--help").text.contains("6 a signature does not verify"))
    }

    func testBashCompletesCommandsOptionValuesAndKeyNames() throws {
        try succeed("key", "create", "alpha-signer", "--kty", "EC-HSM")
        try succeed("key", "create", "alpha-kek", "--kty", "oct-HSM")
        try succeed("key", "create", "beta", "--kty", "EC-HSM")
        let script = try succeed("--generate-completion-script", "bash")
        try script.output.write(to: scratch.appendingPathComponent("hsmctl.bash"))

        func complete(_ line: String) throws -> [String] {
            let words = line.split(separator: " ", omittingEmptySubsequences: false).map { "'\($0)'" }.joined(separator: " ")
            let program = """
                source hsmctl.bash
                COMP_WORDS=(\(words)); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
                _hsmctl hsmctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            let bash = Process()
            bash.executableURL = URL(fileURLWithPath: "/bin/bash")
            bash.arguments = ["-c", program]
            bash.currentDirectoryURL = scratch
            bash.environment = ["HSMD_SOCKET": socket, "PATH": DaemonProcess.binaries.path + ":/usr/bin:/bin"]
            let pipe = Pipe()
            bash.standardOutput = pipe
            try bash.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            bash.waitUntilExit()
            return String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init).sorted()
        }
        XCTAssertEqual(try complete("hsmctl key show alpha"), ["alpha-kek", "alpha-signer"], "key names come from the daemon")
        XCTAssertEqual(try complete("hsmctl key create k --curve P-25"), ["P-256", "P-256K"])
        XCTAssertTrue(try complete("hsmctl key rot").contains("rotation-policy"))
    }
}
