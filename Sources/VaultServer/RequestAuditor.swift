import Audit
import Foundation
import Vault

/// Where the server reports each request once it has an answer, before answering: the answer
/// waits for `completion`, and a failure to record makes the request fail (fail closed).
public protocol RequestAuditor: Sendable {
    /// False while records cannot be written: requests are then refused before they run.
    var isAvailable: Bool { get }
    /// Records the request; `completion` (on any thread) gets nil once the record is durable, or why it is not.
    func record(
        _ request: Request, _ response: Response, latencyMicroseconds: Int,
        completion: @escaping @Sendable ((any Error)?) -> Void)
}

/// Writes one hash-chained line per request to the audit log: who (from the peer credentials),
/// what (operation, data action, key, version), the status and the latency. Payloads never.
public struct AuditLogRecorder: RequestAuditor {
    let log: AuditLog
    let access: AccessControl

    public init(log: AuditLog, access: AccessControl) {
        self.log = log
        self.access = access
    }

    public var isAvailable: Bool { log.isHealthy }

    public func record(
        _ request: Request, _ response: Response, latencyMicroseconds: Int,
        completion: @escaping @Sendable ((any Error)?) -> Void
    ) {
        let principal = access.principal(request)
        let credentials = principal?.credentials
        let facts = response.audit
        let started = DispatchTime.now().uptimeNanoseconds
        log.append(AuditRecord(
            time: Date().formatted(Self.timeStyle),
            requestID: request.requestID,
            principal: .init(
                name: principal?.name ?? "unauthenticated", uid: credentials?.uid, gid: credentials?.gid, pid: credentials?.pid),
            method: request.method.rawValue, path: request.path, operation: facts?.operation ?? "unrouted",
            action: facts?.action, key: facts?.key, version: facts?.version, status: Int(response.status.code),
            latencyMicroseconds: latencyMicroseconds)
        ) { failure in
            AuditMetrics.recordWrite(startedAt: started, failed: failure != nil)
            completion(failure)
        }
    }

    private static let timeStyle = Date.ISO8601FormatStyle()
        .year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)
}
