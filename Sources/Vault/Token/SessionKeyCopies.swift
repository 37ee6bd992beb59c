import CPKCS11
import PKCS11
import Synchronization

/// In-memory copies of the key versions hsmd uses: session objects made inside the token with
/// `C_CopyObject` (`CKA_TOKEN` false). SoftHSM2 re-reads and locks a token object's file on every
/// use; a session object lives in its memory (token-mapping.md: about twice as fast for fast
/// operations). A copy keeps its original's attributes, sensitive and unextractable alike, and
/// exists only inside this process's token library; it dies with the session that made it.
///
/// Copies are made on a version's first use, at most `capacity` of them (the oldest goes first),
/// and forgotten whenever hsmd changes or destroys the version's objects, so a copy never answers
/// for objects the token no longer has.
final class SessionKeyCopies: Sendable {
    let capacity: Int
    /// The session the copies belong to, hsmd's own for them: open as long as they are used.
    private let owner: Session
    private let state = Mutex(State())

    private struct Copy {
        let privateHandle: ObjectHandle
        let publicHandle: ObjectHandle?
    }

    private struct State {
        var copies: [TokenKeyID: Copy] = [:]
        /// Versions in the order their copies were made.
        var order: [TokenKeyID] = []
    }

    init(owner: Session, capacity: Int) {
        self.owner = owner
        self.capacity = capacity
    }

    /// Destroys the copies and closes their session. Call once no operation runs.
    func close() {
        state.withLock { $0 = State() }
        try? owner.close()
    }

    var count: Int { state.withLock { $0.copies.count } }

    /// Every copy's objects.
    var handles: Set<ObjectHandle> {
        state.withLock { state in
            Set(state.copies.values.flatMap { [$0.privateHandle] + ($0.publicHandle.map { [$0] } ?? []) })
        }
    }

    /// The version with its copies' handles, making them on first use if `isCurrent` says the
    /// caller's view of the version is still the index's; nil if they cannot be made (the caller
    /// then uses the token objects, which say why).
    func copy(of key: TokenKey, whileCurrent isCurrent: () -> Bool = { true }) -> TokenKey? {
        guard capacity > 0 else { return nil }
        // Made under the lock: the owner session is used by one thread at a time, and a version
        // changed and forgotten meanwhile (its index entry goes first) cannot get a copy of the
        // objects the caller read before the change.
        let copy = state.withLock { state -> Copy? in
            if let copy = state.copies[key.id] { return copy }
            guard isCurrent(), let copy = try? makeCopy(of: key) else { return nil }
            while state.copies.count >= capacity, !state.order.isEmpty {
                let oldest = state.order.removeFirst()
                if let evicted = state.copies.removeValue(forKey: oldest) { destroy(evicted) }
            }
            state.copies[key.id] = copy
            state.order.append(key.id)
            return copy
        }
        return copy.map { key.withHandles($0.privateHandle, $0.publicHandle) }
    }

    /// Destroys a version's copies. Call after changing or destroying its token objects, and after
    /// removing a destroyed version from the index.
    func forget(_ id: TokenKeyID) {
        state.withLock { state in
            guard let copy = state.copies.removeValue(forKey: id) else { return }
            destroy(copy)
            state.order.removeAll { $0 == id }
        }
    }

    private func makeCopy(of key: TokenKey) throws -> Copy {
        let sessionOnly: [Attribute] = [.bool(CKA_TOKEN, false)]
        let privateCopy = try owner.copyObject(key.privateHandle, template: sessionOnly)
        guard let publicHandle = key.publicHandle else { return Copy(privateHandle: privateCopy, publicHandle: nil) }
        do {
            return Copy(privateHandle: privateCopy, publicHandle: try owner.copyObject(publicHandle, template: sessionOnly))
        } catch {
            try? owner.destroyObject(privateCopy)
            throw error
        }
    }

    private func destroy(_ copy: Copy) {
        try? owner.destroyObject(copy.privateHandle)
        if let publicHandle = copy.publicHandle { try? owner.destroyObject(publicHandle) }
    }
}
