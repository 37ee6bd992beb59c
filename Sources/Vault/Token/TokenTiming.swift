import Dispatch
import Metrics

/// Time spent inside the token, apart from HTTP, queueing and the audit log:
/// `hsmd_token_operation_duration_seconds{operation, outcome}`.
enum TokenTiming {
    static func measure<R>(_ function: String, _ body: () throws(TokenKeyError) -> R) throws(TokenKeyError) -> R {
        let started = DispatchTime.now().uptimeNanoseconds
        let operation = String(function.prefix { $0 != "(" })
        func record(_ outcome: String) {
            // The metrics backend keeps one histogram per label set: making a Timer is a lookup.
            Timer(label: "hsmd_token_operation_duration_seconds", dimensions: [("operation", operation), ("outcome", outcome)])
                .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        }
        do {
            let result = try body()
            record("ok")
            return result
        } catch {
            record("error")
            throw error
        }
    }
}
