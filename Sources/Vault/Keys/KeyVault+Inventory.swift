/// Counts for monitoring: never a key's name.
public struct KeyInventory: Sendable, Equatable {
    /// Keys by state (`active`, `deleted`) and type.
    public var keys: [Count] = []
    /// Versions by key state, type and whether the version can be used now (`enabled`, `disabled`, `expired`, `not_yet_valid`).
    public var versions: [Count] = []

    public static let usabilities = ["enabled", "disabled", "expired", "not_yet_valid"]

    public struct Count: Sendable, Equatable {
        public let labels: [(String, String)]
        public let value: Int

        public static func == (lhs: Count, rhs: Count) -> Bool {
            lhs.value == rhs.value && lhs.labels.elementsEqual(rhs.labels, by: ==)
        }
    }
}

extension KeyVault {
    /// The type of a key's current version, if the name exists (deleted or not).
    public func keyType(of name: String) -> KeyType? {
        record(name)?.latest?.type
    }

    /// Keys and versions by state and type, from memory.
    public func inventory() -> KeyInventory {
        let now = now()
        var keys: [[String]: Int] = [:]
        var versions: [[String]: Int] = [:]
        for record in records.withLock({ Array($0.records) }) {
            guard let latest = record.latest else { continue }
            let state = record.deletion == nil ? "active" : "deleted"
            keys[[state, latest.type.rawValue], default: 0] += 1
            for version in record.versions {
                versions[[state, version.type.rawValue, Self.usability(version.attributes, now)], default: 0] += 1
            }
        }
        func counts(_ table: [[String]: Int], _ names: [String]) -> [KeyInventory.Count] {
            table.sorted { $0.key.lexicographicallyPrecedes($1.key) }
                .map { KeyInventory.Count(labels: Array(zip(names, $0.key)), value: $0.value) }
        }
        return KeyInventory(
            keys: counts(keys, ["state", "key_type"]),
            versions: counts(versions, ["state", "key_type", "usability"]))
    }

    private static func usability(_ attributes: KeyAttributes, _ now: Int64) -> String {
        if !attributes.enabled { return "disabled" }
        if let expires = attributes.expires, expires <= now { return "expired" }
        if let notBefore = attributes.notBefore, notBefore > now { return "not_yet_valid" }
        return "enabled"
    }
}

extension KeyVault {
    /// Nil while the metadata store can be read and written; else what is wrong.
    public func storeProblem() -> String? {
        do {
            try store.checkWritable()
            return nil
        } catch {
            return "the metadata store cannot be written: \(error)"
        }
    }
}
