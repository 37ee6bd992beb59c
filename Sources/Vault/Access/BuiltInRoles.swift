/// Managed HSM's built-in roles (ids and data actions from Microsoft's built-in-roles page, 2024-01).
/// Where that table looks wrong, hsmd takes the least privilege: the Crypto Auditor does not get
/// `keys/deletedKeys/delete` (purge), which the table marks for it but no auditor should have.
/// No built-in role is documented with `rng/action`; hsmd grants it to Crypto User, the role that
/// uses keys for cryptography. See docs/security.md.
public enum BuiltInRoles {
    public static let administrator = "a290e904-7015-4bba-90c8-60543313cdb4"
    public static let cryptoOfficer = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"
    public static let cryptoUser = "21dbd100-6940-42c2-9190-5d6cb909625b"
    public static let policyAdministrator = "4bd23610-cdcf-4971-bdee-bdc562cc28e4"
    public static let cryptoAuditor = "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3"
    public static let serviceEncryptionUser = "33413926-3206-4cdd-b39a-83574fe37a17"
    public static let serviceReleaseUser = "21dbd100-6940-42c2-9190-5d6cb909625c"
    public static let backup = "7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8"
    public static let restore = "6efe6056-5259-49d2-8b3d-d3d73544b20b"
    /// hsmd's own role, for Prometheus and other monitoring agents.
    public static let monitoringReader = "a54c5d74-0364-4400-aa42-897df8577b57"

    private static let roleManagement: [DataAction] = [
        .roleAssignmentsRead, .roleAssignmentsWrite, .roleAssignmentsDelete,
        .roleDefinitionsRead, .roleDefinitionsWrite, .roleDefinitionsDelete,
    ]

    public static let all: [RoleDefinition] = [
        role(administrator, "Managed HSM Administrator",
             "Security domain, full backup and restore, and role management; no key operations.",
             [.securityDomainDownload, .securityDomainDownloadRead, .securityDomainUpload, .securityDomainUploadRead,
              .securityDomainTransferKeyRead, .backupStart, .backupStatus, .restoreStart, .restoreStatus] + roleManagement),
        role(cryptoOfficer, "Managed HSM Crypto Officer",
             "Role management, and recovery and purge of deleted keys.",
             [.deletedKeysRead, .deletedKeysRecover, .deletedKeysDelete, .keysExport] + roleManagement),
        role(cryptoUser, "Managed HSM Crypto User",
             "All key management and cryptography except purge, recovery and export.",
             [.keysRead, .keysWrite, .keysRotate, .keysCreate, .keysDelete, .keysBackup, .keysRestore, .keysRelease,
              .keysImport, .keysEncrypt, .keysDecrypt, .keysWrap, .keysUnwrap, .keysSign, .keysVerify, .random,
              .roleAssignmentsRead, .roleDefinitionsRead]),
        role(policyAdministrator, "Managed HSM Policy Administrator", "Creates and deletes role assignments.", roleManagement),
        role(cryptoAuditor, "Managed HSM Crypto Auditor", "Reads key attributes and role assignments.",
             [.keysRead, .roleAssignmentsRead, .roleDefinitionsRead]),
        role(serviceEncryptionUser, "Managed HSM Crypto Service Encryption User", "Reads keys, wraps and unwraps with them.",
             [.keysRead, .keysWrap, .keysUnwrap]),
        role(serviceReleaseUser, "Managed HSM Crypto Service Release User", "Releases keys.", [.keysRelease]),
        role(backup, "Managed HSM Backup", "Backs keys up.", [.keysBackup, .backupStart, .backupStatus]),
        role(restore, "Managed HSM Restore", "Restores keys.", [.keysRestore, .restoreStart, .restoreStatus]),
        role(monitoringReader, "hsmd Monitoring Reader", "Scrapes hsmd's metrics: counts and latencies, never a key's name.", [.metricsRead]),
    ]

    /// What the initial administrators hold at `/`.
    public static let initialAdministratorRoles = [administrator, cryptoOfficer, cryptoUser, monitoringReader]

    private static func role(_ id: String, _ name: String, _ description: String, _ actions: [DataAction]) -> RoleDefinition {
        RoleDefinition(
            id: id, roleName: name, description: description, isBuiltIn: true,
            permissions: [.init(dataActions: actions.map(\.qualifiedName))], assignableScopes: ["/"])
    }
}
