import CPKCS11
import Foundation
import Vault

/// One condition hsmd needs to serve: a name, and a probe that returns nil when all is well or
/// the reason it is not.
public struct ReadinessCheck: Sendable {
    public let name: String
    public let problem: @Sendable () -> String?

    public init(_ name: String, problem: @escaping @Sendable () -> String?) {
        self.name = name
        self.problem = problem
    }
}

/// `GET /health`: whether the daemon serves, what from and where, and any degradation with its
/// reason (always 200 while the process answers: a liveness probe). `GET /ready`: 200 only when
/// every readiness check passes, else 503 naming what failed. Neither names a key.
public enum HealthRoute {
    struct Health: Encodable {
        struct Token: Encodable {
            let label: String
            let serialNumber: String
            let slot: UInt
            let keyVersions: Int
            /// Nil where the token does not say (SoftHSM2 reports no limit).
            let freePrivateMemory: UInt?
            let freePublicMemory: UInt?
        }
        let status: String
        let version: String
        let uptimeSeconds: Int
        let token: Token
        let listeners: [String]
        let checks: [String: String]
    }

    struct Readiness: Encodable {
        let ready: Bool
        let checks: [String: String]
    }

    public static func add(
        to router: inout Router, token: VaultToken, version: String, started: Date, listeners: [String], checks: [ReadinessCheck]
    ) {
        @Sendable func results() -> (ready: Bool, checks: [String: String]) {
            var outcomes: [String: String] = [:]
            for check in checks { outcomes[check.name] = check.problem() ?? "ok" }
            return (!outcomes.values.contains { $0 != "ok" }, outcomes)
        }
        router.add(.GET, "/health", servesWhileDegraded: true, .blocking { _ in
            let (ready, outcomes) = results()
            let info = token.tokenInfo
            func known(_ value: UInt) -> UInt? { value == hsmd_CK_UNAVAILABLE_INFORMATION ? nil : value }
            var response = Response.json(Health(
                status: ready ? "ok" : "degraded", version: version, uptimeSeconds: Int(Date().timeIntervalSince(started)),
                token: .init(
                    label: info.label, serialNumber: info.serialNumber, slot: token.pool.slot, keyVersions: token.keyCount,
                    freePrivateMemory: known(info.freePrivateMemory), freePublicMemory: known(info.freePublicMemory)),
                listeners: listeners, checks: outcomes))
            response.audit = AuditFacts(operation: "health")
            return response
        })
        router.add(.GET, "/ready", servesWhileDegraded: true, .blocking { _ in
            let (ready, outcomes) = results()
            var response = Response.json(Readiness(ready: ready, checks: outcomes), status: ready ? .ok : .serviceUnavailable)
            if !ready { response.headers.add(name: "retry-after", value: "5") }
            response.audit = AuditFacts(operation: "ready")
            return response
        })
    }
}
