import Audit
import Foundation
import Logging
import Vault

/// `hsmd --check-state`: opens a state directory as a start would, without serving, and reports
/// what is sound, what start-up would repair, and what needs the operator. With `--repair` it makes
/// those repairs (reconciliation; with `--rebuild-metadata`, a lost store rebuilt from the token).
struct StateCheck {
    let directory: StateDirectory
    let provisioning: TokenProvisioner.Options
    let repair: Bool
    let rebuildMetadata: Bool
    let logger: Logger

    /// Prints the report; returns the exit code: 0 when nothing is left to do, 1 otherwise.
    func run() -> Int32 {
        var report = Report()
        defer { report.print() }
        guard FileManager.default.fileExists(atPath: directory.manifest.path) else {
            report.problem("\(directory.manifest.path) is missing: this is not a provisioned state directory")
            return 1
        }
        let opened: (VaultToken, StateLock)
        do {
            opened = try TokenProvisioner(directory: directory, options: provisioning, logger: logger).open()
        } catch {
            report.problem("cannot open the token: \(error)")
            return 1
        }
        let (token, lock) = opened
        defer { token.close(); withExtendedLifetime(lock) {} }
        report.ok("token '\(token.tokenInfo.label)' (serial \(token.tokenInfo.serialNumber)) opens: \(token.keyCount) hsmd key versions, \(token.unmanagedObjects.count) other objects")
        if !token.hasDomainKey { report.problem("the token has no domain key: backups and restores are refused") }

        var inspection = VaultInspection.inspect(token: token, storePath: directory.metadataStore)
        if repair && (!inspection.repairable.isEmpty || rebuildMetadata) {
            do {
                _ = try KeyVault(token: token, storePath: directory.metadataStore, settings: nil, logger: logger, rebuildMetadata: rebuildMetadata)
                let before = inspection
                inspection = VaultInspection.inspect(token: token, storePath: directory.metadataStore)
                (before.repairable + before.problems.filter { !inspection.problems.contains($0) }).forEach { report.repaired($0) }
            } catch {
                report.problem("the repair failed: \(error)")
            }
        }
        let unnamed = (try? token.unnamedObjects().count) ?? 0
        if unnamed > 0 {
            let what = "\(unnamed) token objects with neither label nor id (left by a kill inside SoftHSM2's object write; hsmd never makes them)"
            if repair, let removed = try? token.destroyUnnamedObjects(), removed == unnamed {
                report.repaired(what + ": removed")
            } else {
                report.repairable(what, byStart: false)
            }
        }
        inspection.repairable.forEach { report.repairable($0) }
        inspection.problems.forEach { report.problem($0) }
        if inspection.problems.isEmpty { report.ok("metadata store: \(inspection.activeVersions) key versions, each with its token objects") }

        let audit = AuditVerifier.verify(directory: directory.auditDirectory)
        if let broken = audit.firstBreak {
            report.problem("audit chain broken at \(broken.file) line \(broken.line): \(broken.reason)")
        } else {
            report.ok("audit chain intact: \(audit.lines) lines in \(audit.files) files")
        }
        return report.isClean ? 0 : 1
    }

    private struct Report {
        private var lines: [String] = []
        private(set) var isClean = true

        mutating func ok(_ message: String) { lines.append("ok          \(message)") }
        mutating func repaired(_ message: String) { lines.append("repaired    \(message)") }
        mutating func repairable(_ message: String, byStart: Bool = true) {
            isClean = false
            lines.append("repairable  \(message) (hsmd --check-state --repair\(byStart ? ", or the next start" : ""))")
        }
        mutating func problem(_ message: String) {
            isClean = false
            lines.append("PROBLEM     \(message)")
        }

        func print() {
            Swift.print(lines.joined(separator: "\n"))
        }
    }
}
