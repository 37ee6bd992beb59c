import Dispatch
import Metrics

/// What the server counts per request. Labels are operations, status classes and key types, never
/// a key's name: anyone allowed to scrape may see every series.
enum RequestMetrics {
    static let inFlight = Meter(label: "hsmd_requests_in_flight")

    /// Counts an answered request and its latency from the moment its last byte arrived.
    static func record(operation: String, status: UInt, keyType: String?, startedAt started: UInt64) {
        Counter(label: "hsmd_requests_total", dimensions: [
            ("operation", operation), ("status_class", "\(status / 100)xx"), ("key_type", keyType ?? "none"),
        ]).increment()
        Timer(label: "hsmd_request_duration_seconds", dimensions: [("operation", operation)])
            .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
    }

    static let rejectionReasons = ["saturated", "too_many_connections", "audit_unavailable", "malformed", "client_timeout"]

    /// Requests turned away before a route ran, by reason (one of `rejectionReasons`).
    static func rejectedCounter(_ reason: String) -> Counter {
        Counter(label: "hsmd_requests_rejected_total", dimensions: [("reason", reason)])
    }
}

/// The audit log's side of a request: how long the durable write took, and how often it failed.
enum AuditMetrics {
    static func recordWrite(startedAt started: UInt64, failed: Bool) {
        Timer(label: "hsmd_audit_write_duration_seconds").recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        if failed { Counter(label: "hsmd_audit_write_failures_total").increment() }
    }
}
