import ArgumentParser
import Audit
import Foundation

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read and verify hsmd's audit log (run on the daemon's machine, with read access to it).",
        discussion: """
            Examples:
              hsmctl audit verify                       # tokens/dev/audit
              hsmctl audit verify --dir /var/lib/hsmd/audit
              hsmctl audit tail -n 50
            """,
        subcommands: [Verify.self, Tail.self])

    struct Location: ParsableArguments {
        @Option(help: ArgumentHelp("The audit log's directory (STATE_DIR/audit).", valueName: "DIR"))
        var dir = "tokens/dev/audit"

        var url: URL { URL(fileURLWithPath: dir, isDirectory: true) }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain across every file; report the first line that was edited, removed or reordered.",
            discussion: """
                Exit code 0 when the chain is intact, 1 when it is broken.

                Examples:
                  hsmctl audit verify --dir /var/lib/hsmd/audit
                """)
        @OptionGroup var location: Location

        func run() throws {
            guard FileManager.default.fileExists(atPath: location.dir) else {
                throw CommandFailure.exit("no audit log at \(location.dir)", code: CommandFailure.notFound)
            }
            let report = AuditVerifier.verify(directory: location.url)
            if let broken = report.firstBreak {
                print("BROKEN at \(broken.file) line \(broken.line): \(broken.reason)")
                print("\(report.lines) lines verified before it")
                throw ExitCode(1)
            }
            print("ok: \(report.lines) lines in \(report.files) file(s) form one chain; head \(report.head)")
        }
    }

    struct Tail: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the last audit records.",
            discussion: """
                Examples:
                  hsmctl audit tail -n 50
                  hsmctl audit tail --dir /var/lib/hsmd/audit --output json
                """)
        @OptionGroup var location: Location
        @Option(name: [.customShort("n"), .long], help: "How many records.") var count = 20
        @Option(help: "table or json (the log's own lines).") var output: OutputFormat = .table

        func run() throws {
            var lines: [Substring] = []
            for file in AuditFiles.ordered(in: location.url).reversed() where lines.count < count {
                let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
                lines = text.split(separator: "\n").suffix(count - lines.count) + lines
            }
            if output == .json {
                lines.forEach { print($0) }
                return
            }
            let rows = lines.compactMap { try? JSONDecoder().decode(AuditRecord.self, from: Data($0.utf8)) }.map { record in
                [record.time, record.principal.name, record.operation, record.key ?? "-", "\(record.status)", "\(record.latencyMicroseconds) µs"]
            }
            printTable(["TIME", "PRINCIPAL", "OPERATION", "KEY", "STATUS", "LATENCY"], rows)
        }
    }
}
