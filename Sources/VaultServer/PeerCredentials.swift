import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The kernel's word on who is at the other end of a Unix socket connection (`SO_PEERCRED`), read
/// once when the connection is accepted. Laid out as Linux's `struct ucred`, which Swift's Glibc
/// module does not export.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    /// Reads the credentials of an accepted connection's peer.
    static func read(from channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(Unavailable())
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
    }

    struct Unavailable: Error {}
}

import Vault

extension AccessControl {
    /// The principal behind a request: the socket peer's credentials, or the subject of the bearer
    /// token a network caller authenticated with (nil before authentication).
    public func principal(_ request: Request) -> Principal? {
        switch request.caller {
        case .socket(let peer): principal(uid: peer.uid, gid: peer.gid, pid: peer.pid)
        case .network: request.tokenSubject.map(Principal.init(tokenSubject:))
        // The table has no group or process: the uid's primary group stands for the group.
        case .loopback(let uid): principal(uid: uid, gid: getpwuid(uid)?.pointee.pw_gid ?? UInt32.max, pid: 0)
        }
    }
}
