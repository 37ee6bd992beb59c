import Foundation
import Metrics
import Vault

/// `GET /metrics`: the Prometheus text exposition, for principals whose role grants
/// `hsmd/metrics/read/action` at `/` (the built-in hsmd Monitoring Reader). The series carry
/// operations, states and key types, never a key's name, so scraping reveals no more than counts.
public enum MetricsRoute {
    /// `exposition` renders every series the metrics backend holds.
    public static func add(
        to router: inout Router, vault: KeyVault, access: AccessControl, exposition: @escaping @Sendable () -> [UInt8]
    ) {
        // Series that only move on failure exist from the start, at zero.
        Counter(label: "hsmd_audit_write_failures_total").increment(by: 0)
        for reason in RequestMetrics.rejectionReasons { RequestMetrics.rejectedCounter(reason).increment(by: 0) }
        router.add(.GET, "/metrics", servesWhileDegraded: true, .blocking { request in
            var response: Response
            if let principal = access.principal(request) {
                if access.isAllowed(principal, .metricsRead, scope: RoleScope.root) {
                    updateGauges(vault)
                    response = Response(status: .ok, body: exposition())
                    response.headers.add(name: "content-type", value: "text/plain; version=0.0.4; charset=utf-8")
                } else {
                    response = .error(
                        .forbidden, code: "Forbidden",
                        message: "Caller is not authorized to perform action on resource. Caller: \(principal.name), Action: '\(DataAction.metricsRead.qualifiedName)', Scope: '/'",
                        innerCode: "ForbiddenByRbac")
                }
            } else {
                response = Response(status: .unauthorized)
            }
            response.audit = AuditFacts(operation: "metrics", action: DataAction.metricsRead.qualifiedName)
            return response
        })
    }

    /// Figures read at scrape time rather than counted as they change.
    private static func updateGauges(_ vault: KeyVault) {
        let inventory = vault.inventory()
        let keyCounts = Dictionary(inventory.keys.map { (Self.labelKey($0.labels), $0.value) }, uniquingKeysWith: +)
        let versionCounts = Dictionary(inventory.versions.map { (Self.labelKey($0.labels), $0.value) }, uniquingKeysWith: +)
        // Every combination is reported, zeros included, so a series drops to 0 instead of vanishing.
        for state in ["active", "deleted"] {
            for type in KeyType.allCases.map(\.rawValue) {
                let keyLabels = [("state", state), ("key_type", type)]
                Gauge(label: "hsmd_keys", dimensions: keyLabels).record(keyCounts[labelKey(keyLabels)] ?? 0)
                for usability in KeyInventory.usabilities {
                    let labels = keyLabels + [("usability", usability)]
                    Gauge(label: "hsmd_key_versions", dimensions: labels).record(versionCounts[labelKey(labels)] ?? 0)
                }
            }
        }
        let pool = vault.token.pool
        Gauge(label: "hsmd_token_sessions", dimensions: [("state", "idle")]).record(pool.idleCount)
        Gauge(label: "hsmd_token_sessions", dimensions: [("state", "borrowed")]).record(max(0, pool.openCount - pool.idleCount))
        let process = ProcessFigures.read()
        Gauge(label: "process_resident_memory_bytes").record(process.residentBytes)
        Gauge(label: "process_open_fds").record(process.openFileDescriptors)
    }

    private static func labelKey(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
    }
}

/// The daemon's own resource use, from /proc.
struct ProcessFigures {
    let residentBytes: Int
    let openFileDescriptors: Int

    static func read() -> ProcessFigures {
        // statm's second field is resident pages.
        let statm = ProcFile.read("/proc/self/statm") ?? ""
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        return ProcessFigures(residentBytes: pages * Int(sysconf(Int32(_SC_PAGESIZE))), openFileDescriptors: descriptors)
    }
}
