import Foundation

/// What `hsmd --check-state` finds when it compares the metadata store with the token, without
/// changing either: the cases start-up reconciliation repairs, and the ones it cannot.
public struct VaultInspection: Sendable {
    /// Interrupted creations and purges: start-up (or `--check-state --repair`) finishes or undoes them.
    public var repairable: [String] = []
    /// Conditions no repair of hsmd's can fix: restore from a backup.
    public var problems: [String] = []
    public var activeVersions = 0

    /// Reads the store (read-only) and compares it with the token's index.
    public static func inspect(token: VaultToken, storePath: URL) -> VaultInspection {
        var inspection = VaultInspection()
        guard FileManager.default.fileExists(atPath: storePath.path) else {
            inspection.problems.append(
                "the metadata store \(storePath.path) is missing\(token.keyCount > 0 ? " while the token holds \(token.keyCount) hsmd key versions: restore it from a backup, or --rebuild-metadata" : "")")
            return inspection
        }
        let snapshot: MetadataStore.Snapshot
        do {
            let store = try MetadataStore(path: storePath)
            if let damage = try store.integrityProblem() {
                inspection.problems.append("the metadata store \(storePath.path) is damaged: \(damage)")
                return inspection
            }
            if try store.settings() == nil, token.keyCount > 0 {
                inspection.problems.append(
                    "the metadata store \(storePath.path) is empty while the token holds \(token.keyCount) hsmd key versions: restore it from a backup, or --rebuild-metadata")
                return inspection
            }
            snapshot = try store.loadAll()
        } catch {
            inspection.problems.append("cannot read the metadata store \(storePath.path): \(error)")
            return inspection
        }
        for (name, version) in snapshot.pending {
            inspection.repairable.append("key \(name) version \(version.version): its creation was interrupted; it will be undone")
        }
        for record in snapshot.purging {
            inspection.repairable.append("key \(record.name): its purge was interrupted; it will be finished")
        }
        var known = Set<TokenKeyID>()
        for record in snapshot.records {
            for version in record.versions {
                let id = TokenKeyID(stored: record.name, version: version.version)
                known.insert(id)
                inspection.activeVersions += 1
                if (try? token.key(id)) == nil {
                    inspection.problems.append(
                        "key \(record.name) version \(version.version): its token objects are missing; restore the token from a backup")
                }
            }
        }
        let strays = token.keys.filter { !known.contains($0.id) }
        if !strays.isEmpty {
            inspection.problems.append(
                "\(strays.count) token key versions shaped like hsmd's have no metadata (\(strays.prefix(5).map { "\($0.id.name)/\($0.id.version)" }.joined(separator: ", "))\(strays.count > 5 ? ", …" : "")); hsmd leaves them alone")
        }
        return inspection
    }
}
