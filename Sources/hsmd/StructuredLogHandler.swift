import Foundation
import Logging
import Synchronization

/// One line per event on stderr, for journald and log shippers: a JSON object, or logfmt
/// (`key=value`, values quoted when they need it). Values are what the code put in metadata;
/// nothing secret is ever put there.
struct StructuredLogHandler: LogHandler {
    private static let output = Mutex(())
    let label: String
    let format: Settings.LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, format: Settings.LogFormat) {
        self.label = label
        self.format = format
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [String: Any] = [
            "time": Self.timestamp(), "level": event.level.rawValue, "msg": event.message.description, "logger": label,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = Self.plain(value)
        }
        guard var line = format == .json ? Self.json(fields) : Self.logfmt(fields) else { return }
        line.append(UInt8(ascii: "\n"))
        Self.output.withLock { _ in
            line.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    private static func json(_ fields: [String: Any]) -> Data? {
        try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// time, level and msg first, the rest sorted.
    private static func logfmt(_ fields: [String: Any]) -> Data? {
        let leading = ["time", "level", "msg"]
        let keys = leading + fields.keys.filter { !leading.contains($0) }.sorted()
        let pairs = keys.compactMap { key in fields[key].map { "\(key)=\(quoted(flat($0)))" } }
        return Data(pairs.joined(separator: " ").utf8)
    }

    private static func flat(_ value: Any) -> String {
        switch value {
        case let text as String: text
        case let values as [Any]: values.map(flat).joined(separator: ",")
        case let values as [String: Any]: values.sorted { $0.key < $1.key }.map { "\($0.key):\(flat($0.value))" }.joined(separator: ",")
        default: "\(value)"
        }
    }

    private static func quoted(_ text: String) -> String {
        let needsQuotes = text.isEmpty || text.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.isNewline || $0 == "\\" }
        guard needsQuotes else { return text }
        let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }

    private static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(plain)
        case .dictionary(let values): values.mapValues(plain)
        }
    }

    private static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}
