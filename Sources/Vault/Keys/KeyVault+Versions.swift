import Foundation

extension KeyVault {
    /// Creates a key, or a new version of an existing one.
    public func createKey(_ name: String, _ creation: KeyCreation) throws(VaultError) -> KeyBundle {
        try Self.validateName(name)
        let spec = try RequestRules.spec(creation)
        let operations = try RequestRules.operations(creation.operations, type: creation.type, spec: spec)
        try RequestRules.validate(creation.attributes)
        try RequestRules.validateTags(creation.tags)
        return try addVersion(name, spec: spec, operations: operations, attributes: creation.attributes, tags: creation.tags ?? [:]) {
            try token.generate($0, spec: spec, usage: operations)
        }
    }

    /// Imports private key material as a new version.
    public func importKey(_ name: String, _ request: KeyImport) throws(VaultError) -> KeyBundle {
        try Self.validateName(name)
        let spec: KeySpec
        switch (request.type, request.material) {
        case (.rsa, .rsa(let rsa)): spec = .rsa(bits: significantBits(rsa.n))
        case (.ec, .ec(let curve, _, _, _)): spec = .ec(curve)
        case (.oct, .oct(let bytes)): spec = .oct(bits: bytes.count * 8)
        default: throw .badParameter("key: kty \(request.type.rawValue) does not match the key material")
        }
        let operations = try RequestRules.operations(request.operations, type: request.type, spec: spec)
        try RequestRules.validate(request.attributes)
        try RequestRules.validateTags(request.tags)
        return try addVersion(name, spec: spec, operations: operations, attributes: request.attributes, tags: request.tags ?? [:]) {
            try token.importKey($0, material: request.material, usage: operations)
        }
    }

    /// A new version with new material and the type, size or curve, and operations of the current one;
    /// the rotation policy's `expiryTime` sets its `exp`.
    public func rotateKey(_ name: String) throws(VaultError) -> KeyBundle {
        let (record, current) = try activeVersion(name, nil)
        var attributes = AttributeInput()
        if let expiry = record.rotationPolicy?.expiryTime,
            let duration = try? ISO8601Duration.parse(expiry, field: "expiryTime") {
            attributes.expires = now() + duration.totalSeconds
        }
        return try addVersion(record.name, spec: current.spec, operations: current.operations, attributes: attributes, tags: current.tags) {
            try token.generate($0, spec: current.spec, usage: current.operations)
        }
    }

    /// The write path shared by create, import and rotate: the metadata row is recorded `pending`
    /// first, the token object made second, the row made `active` last. A crash between leaves a
    /// pending row that start-up rolls back, never a token object nobody knows of.
    private func addVersion(
        _ name: String, spec: KeySpec, operations: KeyUsage, attributes input: AttributeInput, tags: [String: String],
        make: (TokenKeyID) throws -> TokenKey
    ) throws(VaultError) -> KeyBundle {
        try locks.withLock(name) { () throws(VaultError) -> KeyBundle in
            let existing = record(name)
            if let existing, existing.deletion != nil {
                throw .deletedButRecoverable(
                    "Key \(existing.name) is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.")
            }
            let storedName = existing?.name ?? name
            let versionID = try inVault { try token.newVersion() }
            let id = TokenKeyID(stored: storedName, version: versionID)
            let created = now()
            var version = KeyVersion(
                version: versionID, spec: spec, isHMACKey: operations.makesHMACKey && KeyType(spec) == .oct,
                operations: operations,
                attributes: KeyAttributes(
                    enabled: input.enabled ?? true, notBefore: input.notBefore, expires: input.expires, created: created,
                    updated: created),
                tags: tags, publicKey: nil)
            try writing("a new version of \(storedName)") { try store.insertPending(name: storedName, version: version) }
            do throws(VaultError) {
                version.publicKey = try inVault { try make(id) }.publicKey
                try writing("a new version of \(storedName)") { try store.activate(name: storedName, version: version) }
            } catch {
                try? token.destroy(id)
                try? store.remove(name: storedName, versions: [versionID])
                throw error
            }
            var record = existing ?? KeyRecord(name: storedName, versions: [], deletion: nil, rotationPolicy: nil)
            record.versions.append(version)
            self.store(record)
            return KeyBundle(name: record.name, version: version, deletion: nil)
        }
    }

    // MARK: Reading

    public func getKey(_ name: String, version: String?) throws(VaultError) -> KeyBundle {
        let (record, found) = try activeVersion(name, version)
        return KeyBundle(name: record.name, version: found, deletion: nil)
    }

    /// Keys by name, each as its current version.
    public func listKeys(maxResults: Int, after token: String?) throws(VaultError) -> Page<KeyBundle> {
        let after = try KeyTable.name(fromPageToken: token)
        let (keys, next) = records.withLock { $0.page(after: after, limit: maxResults) { $0.deletion == nil && !$0.versions.isEmpty } }
        return Page(items: keys.map { KeyBundle(name: $0.name, version: $0.latest!, deletion: nil) }, nextToken: next)
    }

    /// A key's versions in creation order.
    public func listVersions(_ name: String, maxResults: Int, after token: String?) throws(VaultError) -> Page<KeyBundle> {
        let record = try activeRecord(name)
        // hsmd issues positions inside the list only (a key's versions never shrink while it exists).
        if let token, !(0..<record.versions.count).contains(Int(token) ?? -1) {
            throw .badParameter("$skiptoken is not one hsmd issued: follow nextLink as given")
        }
        return Self.page(record.versions, maxResults: maxResults, after: token) {
            KeyBundle(name: record.name, version: $0, deletion: nil)
        }
    }

    /// Pages by position: the token is the index of the next item, opaque to callers. (A key's
    /// versions only grow at the end, so positions stay valid between pages.)
    static func page<Element, Item: Sendable>(
        _ elements: [Element], maxResults: Int, after token: String?, _ transform: (Element) -> Item
    ) -> Page<Item> {
        // Clamped first: a forged token near Int.max must not overflow the sum below.
        let start = min(token.flatMap(Int.init).map { max(0, $0) } ?? 0, elements.count)
        let end = min(elements.count, start + maxResults)
        let items = start < end ? elements[start..<end].map(transform) : []
        return Page(items: items, nextToken: end < elements.count ? String(end) : nil)
    }

    // MARK: Updating

    /// Changes a version's operations, attributes or tags. Key material never changes.
    public func updateKey(_ name: String, version: String?, _ update: KeyUpdate) throws(VaultError) -> KeyBundle {
        try RequestRules.validate(update.attributes)
        try RequestRules.validateTags(update.tags)
        return try locks.withLock(name) { () throws(VaultError) -> KeyBundle in
            var (record, found) = try activeVersion(name, version)
            var changed = found
            if let names = update.operations {
                let operations = try RequestRules.operations(names, type: found.type, spec: found.spec)
                if found.type == .oct && operations.makesHMACKey != found.isHMACKey && !operations.isEmpty {
                    throw .badParameter("key_ops: this oct-HSM key is an \(found.isHMACKey ? "HMAC" : "AES") key; its operations cannot change kind")
                }
                changed.operations = operations
            }
            if let enabled = update.attributes.enabled { changed.attributes.enabled = enabled }
            if let notBefore = update.attributes.notBefore { changed.attributes.notBefore = notBefore }
            if let expires = update.attributes.expires { changed.attributes.expires = expires }
            if let nbf = changed.attributes.notBefore, let exp = changed.attributes.expires, nbf >= exp {
                throw .badParameter("attributes.nbf must be before attributes.exp")
            }
            if let tags = update.tags { changed.tags = tags }
            changed.attributes.updated = now()
            if changed.operations != found.operations {
                try inVault { try token.setUsage(tokenID(record, found), changed.operations) }
            }
            try writing("the update of \(record.name)") { try store.update(name: record.name, version: changed) }
            if let index = record.versions.firstIndex(where: { $0.version == found.version }) {
                record.versions[index] = changed
            }
            store(record)
            found = changed
            return KeyBundle(name: record.name, version: found, deletion: nil)
        }
    }

    static func validateName(_ name: String) throws(VaultError) {
        guard TokenKeyID.isValidName(name) else {
            throw .badParameter("key name '\(name.prefix(130))' is invalid: use 1 to 127 characters of 0-9, a-z, A-Z and '-'")
        }
    }
}
