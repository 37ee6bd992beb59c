import ArgumentParser
import Foundation
import HSMClient

@main
struct HSMCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hsmctl",
        abstract: "Talk to a running hsmd over its Unix socket.",
        discussion: """
            The socket is --socket, else $HSMD_SOCKET, else tokens/dev/hsmd.sock (the README's development daemon).

            Output is an aligned table for people; --output json prints the API's JSON for scripts.
            Shell completion: hsmctl --generate-completion-script bash|zsh|fish (see docs/hsmctl.md).

            Exit codes: 0 success, 1 hsmd failed (5xx), 2 the request was refused as invalid (400, 409), \
            3 hsmd cannot be reached, 4 forbidden (403), 5 not found (404), 6 a signature does not verify, \
            64 bad usage.

            Examples:
              hsmctl status
              hsmctl key create payments --kty EC-HSM --curve P-256
              hsmctl key sign payments --alg ES256 --file bill.pdf --out-file bill.sig
              hsmctl key list --output json
            """,
        // No `version:` here: ArgumentParser would then read `--version` on any failed command line as a
        // request for hsmctl's version (exit 0), and key commands take --version VERSION as az does.
        subcommands: [Status.self, Health.self, Key.self, Random.self, Role.self, AuditCommand.self, TLS.self, Token.self, Client.self])
}

struct ConnectionOptions: ParsableArguments {
    static let defaultSocket = "tokens/dev/hsmd.sock"

    @Option(help: ArgumentHelp("hsmd's Unix socket.", valueName: "PATH"))
    var socket: String = ProcessInfo.processInfo.environment["HSMD_SOCKET"] ?? defaultSocket

    @Option(help: "table (for people) or json (the API's JSON, for scripts).")
    var output: OutputFormat = .table

    var client: HSMClient { HSMClient(socketPath: socket) }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Failures that end hsmctl with a one-line message on stderr and a distinct exit code.
enum CommandFailure {
    static let serverError: Int32 = 1
    static let invalid: Int32 = 2
    static let unreachable: Int32 = 3
    static let forbidden: Int32 = 4
    static let notFound: Int32 = 5
    static let signatureInvalid: Int32 = 6
    static let usage: Int32 = ExitCode.validationFailure.rawValue

    static func exit(_ message: String, code: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("hsmctl: \(message)\n".utf8))
        return ExitCode(code)
    }
}
