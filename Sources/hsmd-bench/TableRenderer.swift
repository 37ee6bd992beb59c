import Foundation

/// The report as aligned text tables, one per concurrency level.
enum TableRenderer {
    private static let headers = [
        "operation", "socket ops/s", "p50 µs", "p99 µs", "p99.9 µs", "direct ops/s", "p50 µs", "p99 µs", "p99.9 µs",
        "socket/direct", "peer ops/s", "p50 µs", "socket/peer", "openssl ops/s", "socket/openssl", "errors",
    ]

    static func render(_ report: BenchReport) -> String {
        var text = ""
        for run in report.runs {
            text += "concurrency \(run.concurrency)\n"
            let rows = run.operations.map(row)
            text += aligned([headers] + rows) + "\n"
        }
        if !report.cleanupFailures.isEmpty {
            text += "keys left behind:\n" + report.cleanupFailures.map { "  \($0)\n" }.joined()
        }
        return text
    }

    private static func row(_ result: BenchReport.OperationResult) -> [String] {
        let socket = result.socket
        let direct = result.direct
        return [
            result.title, rate(socket.opsPerSecond), micros(socket.p50Microseconds), micros(socket.p99Microseconds),
            micros(socket.p999Microseconds), direct.map { rate($0.opsPerSecond) } ?? "-",
            direct.map { micros($0.p50Microseconds) } ?? "-", direct.map { micros($0.p99Microseconds) } ?? "-",
            direct.map { micros($0.p999Microseconds) } ?? "-", result.socketOverDirect.map(ratio) ?? "-",
            result.peer.map { rate($0.opsPerSecond) } ?? "-", result.peer.map { micros($0.p50Microseconds) } ?? "-",
            result.socketOverPeer.map(ratio) ?? "-",
            result.openssl.map { rate($0.opsPerSecond) } ?? "-", result.socketOverOpenSSL.map(ratio) ?? "-",
            "\(socket.errors + (direct?.errors ?? 0) + (result.peer?.errors ?? 0))",
        ]
    }

    /// The first column left-aligned, the numbers right-aligned.
    private static func aligned(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { cells in
            cells.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + padding : padding + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }

    private static func rate(_ value: Double) -> String { String(format: "%.0f", value) }
    private static func micros(_ value: Double) -> String { String(format: value < 100 ? "%.1f" : "%.0f", value) }
    private static func ratio(_ value: Double) -> String { String(format: "%.2f", value) }
}
