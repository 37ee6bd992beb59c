/// Bringing keys that already live in the token (made by pkcs11-tool, softhsm2-util --import, an older
/// system) under management as the first version of a named key.
extension KeyVault {
    /// The provenance tag an adopted version carries: the label and id it had (`label|idhex`). A crash
    /// between relabelling and activation is undone with it.
    static let adoptedFromTag = "adopted-from"

    /// Token objects that are not versions of hsmd's keys.
    public func unmanagedObjects() throws(VaultError) -> [TokenObject] {
        let managed = records.withLock { records in
            Set(records.records.flatMap { record in record.versions.map { tokenID(record, $0) } })
        }
        return try inVault { try token.unmanagedObjects(excluding: managed) }
    }

    /// Adopts the unmanaged key whose CKA_ID is `objectID` (hex), with its public key for a pair.
    /// A private or secret key that is not sensitive, or that can be extracted in clear, is refused
    /// unless `force`: hsmd could not keep the promise that its material never leaves the token.
    public func adoptKey(_ name: String, objectID: String, label: String?, force: Bool) throws(VaultError) -> KeyBundle {
        try Self.validateName(name)
        let wanted = objectID.lowercased()
        let candidates = try unmanagedObjects().filter { $0.idHex == wanted && (label == nil || $0.label == label) }
        let keys = candidates.filter { $0.kind == .privateKey || $0.kind == .secretKey }
        guard keys.count == 1, let key = keys.first else {
            throw keys.isEmpty
                ? .notFound(code: "ObjectNotFound", message: "no unmanaged private or secret key has CKA_ID \(wanted)\(label.map { " and label \($0)" } ?? "")")
                : .conflict("\(keys.count) unmanaged keys have CKA_ID \(wanted): name the label too")
        }
        guard let spec = key.spec, (try? spec.validated()) != nil else {
            throw .badParameter("the object is a key hsmd does not offer (\(key.spec.map { "\($0)" } ?? "unknown type"))")
        }
        if !force {
            if key.sensitive != true {
                throw .badParameter("the key is not sensitive (CKA_SENSITIVE=false): its value can be read by anyone with the user PIN; pass force to adopt it anyway")
            }
            if key.extractable == true {
                throw .badParameter("the key is extractable (CKA_EXTRACTABLE=true): it can be wrapped out of the token; pass force to adopt it anyway")
            }
        }
        let objects = [key] + candidates.filter { $0.kind == .publicKey }
        let operations = objects.reduce(KeyUsage()) { $0.union($1.usage) }
            .intersection(KeyType(spec).possibleOperations(hmac: key.isHMACKey))
        return try locks.withLock(name) { () throws(VaultError) -> KeyBundle in
            if record(name) != nil {
                throw .conflict("a key named \(name) exists already: adoption makes a new key, not a new version")
            }
            let versionID = try inVault { try token.newVersion() }
            let id = TokenKeyID(stored: name, version: versionID)
            let created = now()
            var version = KeyVersion(
                version: versionID, spec: spec, isHMACKey: key.isHMACKey, operations: operations,
                attributes: KeyAttributes(enabled: true, notBefore: nil, expires: nil, created: created, updated: created),
                tags: [Self.adoptedFromTag: "\(key.label)|\(key.idHex)"], publicKey: nil)
            try writing("the adoption of \(name)") { try store.insertPending(name: name, version: version) }
            do throws(VaultError) {
                version.publicKey = try inVault { try token.adopt(objects, as: id) }.publicKey
                try writing("the adoption of \(name)") { try store.activate(name: name, version: version) }
            } catch {
                try? token.relabel(id, label: key.label, objectID: key.id)
                try? store.remove(name: name, versions: [versionID])
                throw error
            }
            let record = KeyRecord(name: name, versions: [version], deletion: nil, rotationPolicy: nil)
            store(record)
            return KeyBundle(name: name, version: version, deletion: nil)
        }
    }
}
