/// Every key's metadata in memory, by lower-cased name, with the names also kept sorted so that a
/// page of a listing costs a binary search and the page itself, however many keys there are.
struct KeyTable: Sendable {
    private(set) var byName: [String: KeyRecord] = [:]
    /// The keys of `byName`, ascending.
    private var sortedNames: [String] = []

    init(_ records: [KeyRecord]) {
        for record in records { byName[record.name.lowercased()] = record }
        sortedNames = byName.keys.sorted()
    }

    subscript(name: String) -> KeyRecord? {
        byName[name.lowercased()]
    }

    var records: Dictionary<String, KeyRecord>.Values { byName.values }

    mutating func store(_ record: KeyRecord) {
        let key = record.name.lowercased()
        if byName.updateValue(record, forKey: key) == nil {
            sortedNames.insert(key, at: insertionIndex(of: key))
        }
    }

    mutating func remove(_ name: String) {
        let key = name.lowercased()
        guard byName.removeValue(forKey: key) != nil else { return }
        let index = insertionIndex(of: key)
        if index < sortedNames.count, sortedNames[index] == key { sortedNames.remove(at: index) }
    }

    /// Page tokens are `after:` and the last name of the page before, so that a token cannot be
    /// mistaken for a position (positions shift as keys come and go; names do not).
    static let pageTokenPrefix = "after:"

    static func name(fromPageToken token: String?) throws(VaultError) -> String? {
        guard let token else { return nil }
        guard token.hasPrefix(pageTokenPrefix), token.count > pageTokenPrefix.count else {
            throw .badParameter("$skiptoken is not one hsmd issued: follow nextLink as given")
        }
        return String(token.dropFirst(pageTokenPrefix.count))
    }

    /// Up to `limit` records that `include` accepts, in name order, after the name `after` (exclusive),
    /// and the token of the next page when more may follow.
    func page(after: String?, limit: Int, where include: (KeyRecord) -> Bool) -> (records: [KeyRecord], nextToken: String?) {
        var index = after.map { after in
            let start = insertionIndex(of: after)
            return start < sortedNames.count && sortedNames[start] == after ? start + 1 : start
        } ?? 0
        var found: [KeyRecord] = []
        while index < sortedNames.count {
            if let record = byName[sortedNames[index]], include(record) {
                if found.count == limit { return (found, found.last.map { Self.pageTokenPrefix + $0.name.lowercased() }) }
                found.append(record)
            }
            index += 1
        }
        return (found, nil)
    }

    /// The first position whose name is not less than `key`.
    private func insertionIndex(of key: String) -> Int {
        var low = 0
        var high = sortedNames.count
        while low < high {
            let middle = (low + high) / 2
            if sortedNames[middle] < key { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
