import Foundation

/// Serialises changes to one key name (create, rotate, delete, purge, restore …) without holding
/// up other names: a fixed set of locks, picked by the name's hash.
final class NameLocks: Sendable {
    private let locks = (0..<64).map { _ in NSLock() }

    func withLock<R, E: Error>(_ name: String, _ body: () throws(E) -> R) throws(E) -> R {
        var hasher = Hasher()
        hasher.combine(name.lowercased())
        let lock = locks[Int(UInt(bitPattern: hasher.finalize()) % UInt(locks.count))]
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
