import Foundation

extension KeyVault {
    /// The tag every rebuilt version carries, with the time of the rebuild.
    static let rebuiltTag = "rebuilt-from-token"

    /// Recreates the metadata of every hsmd key version in the token, for a store that was lost
    /// (`hsmd --rebuild-metadata`). What the token holds comes back: names, versions, types, public
    /// keys and the operations its usage flags allow. What only the store held does not: attributes
    /// (versions come back enabled, without nbf or exp), tags, rotation policies, deletion state and
    /// the order of versions (a key's versions are ordered by id, so its current one may change).
    func rebuildFromToken() throws {
        let now = now()
        let byName = Dictionary(grouping: token.keys, by: { $0.id.name.lowercased() })
        for (_, keys) in byName.sorted(by: { $0.key < $1.key }) {
            var record = KeyRecord(name: keys[0].id.name, versions: [], deletion: nil, rotationPolicy: nil)
            for key in keys.sorted(by: { $0.id.version < $1.id.version }) {
                guard case .success(let usage) = Result(catching: { () throws(TokenKeyError) in try token.permittedUsage(of: key.id) }),
                    key.spec != .oct(bits: 0)
                else {
                    logger.warning("cannot rebuild a version whose usage or size the token does not tell; left alone",
                                   metadata: ["key": "\(key.id.name)", "version": "\(key.id.version)"])
                    continue
                }
                record.versions.append(KeyVersion(
                    version: key.id.version, spec: key.spec, isHMACKey: key.isHMACKey, operations: usage,
                    attributes: KeyAttributes(enabled: true, notBefore: nil, expires: nil, created: now, updated: now),
                    tags: [Self.rebuiltTag: String(now)], publicKey: key.publicKey))
            }
            guard !record.versions.isEmpty else { continue }
            try store.insertPending(record: record)
            try store.activate(name: record.name, versions: record.versions.map(\.version))
            records.withLock { $0.store(record) }
        }
        logger.warning("rebuilt the metadata store from the token", metadata: ["keys": "\(byName.count)", "versions": "\(token.keyCount)"])
    }
}
