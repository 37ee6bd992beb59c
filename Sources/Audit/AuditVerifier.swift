import Foundation

/// Checks the chain across every file of a log: each line's `previous` is the hash of the line
/// before, and each line's hash is its own. Reports the first line where that fails.
public enum AuditVerifier {
    public struct Report: Sendable, Equatable {
        public var lines: Int
        public var files: Int
        public var head: String
        /// Where the chain first breaks: file, 1-based line, and why. Nil when intact.
        public var firstBreak: (file: String, line: Int, reason: String)?

        public static func == (lhs: Report, rhs: Report) -> Bool {
            lhs.lines == rhs.lines && lhs.files == rhs.files && lhs.head == rhs.head
                && lhs.firstBreak?.file == rhs.firstBreak?.file && lhs.firstBreak?.line == rhs.firstBreak?.line
        }
    }

    public static func verify(directory: URL) -> Report {
        let files = AuditFiles.ordered(in: directory)
        var report = Report(lines: 0, files: files.count, head: AuditRecord.genesis, firstBreak: nil)
        var expectedSeq: UInt64?
        for file in files {
            let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                if line.isEmpty { continue }
                let position = (file.lastPathComponent, index + 1)
                guard let record = try? JSONDecoder().decode(AuditRecord.self, from: Data(line.utf8)) else {
                    report.firstBreak = (position.0, position.1, "not an audit record")
                    return report
                }
                if record.previous != report.head {
                    report.firstBreak = (position.0, position.1, "its previous hash does not match the line before: a line was removed, reordered or inserted")
                    return report
                }
                if record.computedHash() != record.hash {
                    report.firstBreak = (position.0, position.1, "its content does not match its hash: the line was edited")
                    return report
                }
                if let expectedSeq, record.seq != expectedSeq {
                    report.firstBreak = (position.0, position.1, "sequence \(record.seq) follows \(expectedSeq - 1)")
                    return report
                }
                expectedSeq = record.seq + 1
                report.head = record.hash
                report.lines += 1
            }
        }
        return report
    }
}
