import CPKCS11
import Synchronization

/// Sessions for concurrent work on one slot: each operation borrows a session of its own for its
/// duration, so no session is ever used, or closed, by two threads at once.
public final class SessionPool: Sendable {
    public let module: PKCS11Module
    public let slot: CK_SLOT_ID
    private let idle = Mutex<[Session]>([])
    private let opened = Atomic<Int>(0)

    public init(module: PKCS11Module, slot: CK_SLOT_ID) {
        self.module = module
        self.slot = slot
    }

    /// Sessions currently open through this pool, idle or borrowed.
    public var openCount: Int { opened.load(ordering: .relaxed) }

    /// Sessions open and waiting to be borrowed.
    public var idleCount: Int { idle.withLock { $0.count } }

    public func withSession<R>(_ body: (Session) throws -> R) throws -> R {
        let session = try borrow()
        do {
            let result = try body(session)
            giveBack(session)
            return result
        } catch let error as P11Error where Self.sessionIsGone(error) {
            opened.subtract(1, ordering: .relaxed)
            throw error
        } catch {
            giveBack(session)
            throw error
        }
    }

    /// Closes the idle sessions. Call once every borrower has returned (after the server drained).
    public func closeAll() {
        let sessions = idle.withLock { sessions in
            defer { sessions.removeAll() }
            return sessions
        }
        for session in sessions {
            try? session.close()
            opened.subtract(1, ordering: .relaxed)
        }
    }

    private func borrow() throws -> Session {
        if let session = idle.withLock({ $0.popLast() }) {
            return session
        }
        let session = try module.openSession(slot: slot)
        opened.add(1, ordering: .relaxed)
        return session
    }

    private func giveBack(_ session: Session) {
        idle.withLock { $0.append(session) }
    }

    private static func sessionIsGone(_ error: P11Error) -> Bool {
        error.code == CK_RV(CKR_SESSION_HANDLE_INVALID) || error.code == CK_RV(CKR_SESSION_CLOSED)
    }
}
