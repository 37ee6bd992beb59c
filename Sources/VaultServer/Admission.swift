import Synchronization

/// The daemon's capacity, shared by every listener: how many connections may be open and how many
/// requests may wait for or run on the blocking pool. Past either, callers get a prompt 503 with
/// Retry-After instead of an unbounded queue.
public final class Admission: Sendable {
    public let maximumConnections: Int
    public let maximumPendingRequests: Int
    private let connections = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)

    public init(maximumConnections: Int, maximumPendingRequests: Int) {
        self.maximumConnections = maximumConnections
        self.maximumPendingRequests = maximumPendingRequests
    }

    /// Counts a new connection; false if it is one too many (it must be answered 503 and closed).
    func openConnection() -> Bool {
        connections.wrappingAdd(1, ordering: .relaxed).newValue <= maximumConnections
    }

    func closeConnection() {
        connections.wrappingSubtract(1, ordering: .relaxed)
    }

    /// Reserves a place for a request on the blocking pool; false when they are all taken.
    func admitRequest() -> Bool {
        if pending.wrappingAdd(1, ordering: .relaxed).newValue <= maximumPendingRequests { return true }
        pending.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func finishRequest() {
        pending.wrappingSubtract(1, ordering: .relaxed)
    }
}
