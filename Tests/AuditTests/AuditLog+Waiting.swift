import Dispatch
import Synchronization

@testable import Audit

extension AuditLog {
    /// Appends and waits for the outcome, as a request waits before its answer.
    func appendWaiting(_ record: AuditRecord) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<Unavailable?>(nil)
        append(record) { failure in
            outcome.withLock { $0 = failure }
            done.signal()
        }
        done.wait()
        if let failure = outcome.withLock({ $0 }) { throw failure }
    }
}
