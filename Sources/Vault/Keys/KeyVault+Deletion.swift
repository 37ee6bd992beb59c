extension KeyVault {
    /// Soft-deletes a key with all its versions; it stays recoverable until its purge date.
    public func deleteKey(_ name: String) throws(VaultError) -> KeyBundle {
        try locks.withLock(name) { () throws(VaultError) -> KeyBundle in
            var record = try activeRecord(name)
            let deleted = now()
            let deletion = Deletion(deletedDate: deleted, scheduledPurgeDate: deleted + Int64(settings.retentionDays) * 86_400)
            try writing("the deletion of \(record.name)") { try store.setDeletion(name: record.name, deletion) }
            record.deletion = deletion
            store(record)
            return KeyBundle(name: record.name, version: record.latest!, deletion: deletion)
        }
    }

    public func getDeletedKey(_ name: String) throws(VaultError) -> KeyBundle {
        let record = try deletedRecord(name)
        return KeyBundle(name: record.name, version: record.latest!, deletion: record.deletion)
    }

    public func listDeletedKeys(maxResults: Int, after token: String?) throws(VaultError) -> Page<KeyBundle> {
        let after = try KeyTable.name(fromPageToken: token)
        let (deleted, next) = records.withLock { $0.page(after: after, limit: maxResults) { $0.deletion != nil && !$0.versions.isEmpty } }
        return Page(items: deleted.map { KeyBundle(name: $0.name, version: $0.latest!, deletion: $0.deletion) }, nextToken: next)
    }

    /// Brings a deleted key back with every version.
    public func recoverDeletedKey(_ name: String) throws(VaultError) -> KeyBundle {
        try locks.withLock(name) { () throws(VaultError) -> KeyBundle in
            var record = try deletedRecord(name)
            try writing("the recovery of \(record.name)") { try store.setDeletion(name: record.name, nil) }
            record.deletion = nil
            store(record)
            return KeyBundle(name: record.name, version: record.latest!, deletion: nil)
        }
    }

    /// Destroys a deleted key's token objects and forgets it. Refused under purge protection.
    public func purgeDeletedKey(_ name: String) throws(VaultError) {
        try locks.withLock(name) { () throws(VaultError) in
            let record = try deletedRecord(name)
            if settings.purgeProtection {
                throw .forbidden(
                    innerCode: "PurgeProtected",
                    message: "purge protection is on: \(record.name) is purged automatically on its scheduledPurgeDate and can be recovered until then")
            }
            try purge(record)
        }
    }

    /// Purges every deleted key whose scheduled purge date has passed; returns how many.
    @discardableResult
    public func purgeExpiredKeys() -> Int {
        let due = records.withLock { $0.records.filter { ($0.deletion?.scheduledPurgeDate ?? .max) <= now() } }
        var purged = 0
        for record in due {
            do {
                try locks.withLock(record.name) { () throws(VaultError) in
                    guard let current = self.record(record.name), current.deletion != nil else { return }
                    try purge(current)
                }
                purged += 1
                logger.info("purged a deleted key on its scheduled date", metadata: ["key": "\(record.name)"])
            } catch {
                logger.error("scheduled purge failed", metadata: ["key": "\(record.name)", "error": "\(error)"])
            }
        }
        return purged
    }

    /// Marks the key purging, destroys its objects, then forgets it: a crash in between is finished
    /// at the next start.
    private func purge(_ record: KeyRecord) throws(VaultError) {
        try writing("the purge of \(record.name)") { try store.markPurging(name: record.name) }
        for version in record.versions {
            let id = tokenID(record, version)
            if (try? token.key(id)) != nil { try inVault { try token.destroy(id) } }
        }
        try writing("the purge of \(record.name)") { try store.removeKey(name: record.name) }
        forget(record.name)
    }

    private func deletedRecord(_ name: String) throws(VaultError) -> KeyRecord {
        guard let record = record(name), record.deletion != nil, !record.versions.isEmpty else {
            throw .deletedKeyNotFound("Deleted Key not found: \(name)")
        }
        return record
    }
}
