/// Managed HSM's data actions (local RBAC), without the `Microsoft.KeyVault/managedHsm/` prefix
/// that the API shows them with.
public enum DataAction: String, CaseIterable, Sendable {
    case keysRead = "keys/read/action"
    case keysWrite = "keys/write/action"
    case keysCreate = "keys/create"
    case keysDelete = "keys/delete"
    case keysImport = "keys/import/action"
    case keysRotate = "keys/rotate/action"
    case keysBackup = "keys/backup/action"
    case keysRestore = "keys/restore/action"
    case keysRelease = "keys/release/action"
    case keysExport = "keys/export/action"
    case keysEncrypt = "keys/encrypt/action"
    case keysDecrypt = "keys/decrypt/action"
    case keysWrap = "keys/wrap/action"
    case keysUnwrap = "keys/unwrap/action"
    case keysSign = "keys/sign/action"
    case keysVerify = "keys/verify/action"
    case deletedKeysRead = "keys/deletedKeys/read/action"
    case deletedKeysRecover = "keys/deletedKeys/recover/action"
    case deletedKeysDelete = "keys/deletedKeys/delete"
    case roleAssignmentsRead = "roleAssignments/read/action"
    case roleAssignmentsWrite = "roleAssignments/write/action"
    case roleAssignmentsDelete = "roleAssignments/delete/action"
    case roleDefinitionsRead = "roleDefinitions/read/action"
    case roleDefinitionsWrite = "roleDefinitions/write/action"
    case roleDefinitionsDelete = "roleDefinitions/delete/action"
    case securityDomainDownload = "securitydomain/download/action"
    case securityDomainDownloadRead = "securitydomain/download/read"
    case securityDomainUpload = "securitydomain/upload/action"
    case securityDomainUploadRead = "securitydomain/upload/read"
    case securityDomainTransferKeyRead = "securitydomain/transferkey/read"
    case backupStart = "backup/start/action"
    case backupStatus = "backup/status/action"
    case restoreStart = "restore/start/action"
    case restoreStatus = "restore/status/action"
    case random = "rng/action"
    /// hsmd's own: scraping its Prometheus metrics (no Managed HSM action covers monitoring).
    case metricsRead = "hsmd/metrics/read/action"

    public static let prefix = "Microsoft.KeyVault/managedHsm/"

    /// The full name, as role definitions and error messages carry it.
    public var qualifiedName: String { Self.prefix + rawValue }

    /// Whether a permission entry (full name, possibly ending in `*`) covers this action.
    func isCovered(by pattern: String) -> Bool {
        let pattern = pattern.lowercased()
        let name = qualifiedName.lowercased()
        if pattern == "*" { return true }
        if pattern.hasSuffix("*") { return name.hasPrefix(pattern.dropLast()) }
        return name == pattern
    }
}
