import Audit
import Foundation
import Vault

/// Where the server reports each request once it has an answer. Called on the blocking pool; a
/// failure to record makes the request fail (fail closed).
public protocol RequestAuditor: Sendable {
    /// False while records cannot be written: requests are then refused before they run.
    var isAvailable: Bool { get }
    func record(_ request: Request, _ response: Response, latencyMicroseconds: Int) throws
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

    public func record(_ request: Request, _ response: Response, latencyMicroseconds: Int) throws {
        let principal = access.principal(request)
        let credentials = principal?.credentials
        let facts = response.audit
        let started = DispatchTime.now().uptimeNanoseconds
        var failed = true
        defer { AuditMetrics.recordWrite(startedAt: started, failed: failed) }
        try log.append(AuditRecord(
            time: Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)),
            requestID: request.requestID,
            principal: .init(
                name: principal?.name ?? "unauthenticated", uid: credentials?.uid, gid: credentials?.gid, pid: credentials?.pid),
            method: request.method.rawValue, path: request.path, operation: facts?.operation ?? "unrouted",
            action: facts?.action, key: facts?.key, version: facts?.version, status: Int(response.status.code),
            latencyMicroseconds: latencyMicroseconds))
        failed = false
    }
}
