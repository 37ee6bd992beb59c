import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix

/// HTTP/1.1 on hsmd's Unix socket. Shutting down stops accepting, lets every in-flight request
/// finish and be answered, then closes the connections. The event loop group belongs to the
/// caller and must outlive the server (the quiescing helper completes a promise on it when freed).
public final class HTTPServer: Sendable {
    public struct Configuration: Sendable {
        public var socketPath: String
        public var maximumBodySize = 1 << 20
        /// Makes the socket 0660 and owned by this group, so its members can connect (RBAC then
        /// decides what they may do). Nil: 0600, the daemon's user only.
        public var socketGroup: gid_t?

        public init(socketPath: String) {
            self.socketPath = socketPath
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let quiescing: ServerQuiescingHelper
    private let channel: any Channel

    /// Binds the socket and starts serving.
    public init(
        configuration: Configuration, router: Router, group: any EventLoopGroup, blockingPool: NIOThreadPool,
        auditor: (any RequestAuditor)? = nil, logger: Logger
    ) throws {
        try SocketFile.prepare(configuration.socketPath)
        let quiescing = ServerQuiescingHelper(group: group)
        let maximumBodySize = configuration.maximumBodySize
        // The socket file is born 0600: no window in which others could connect before a chmod.
        let previousMask = umask(0o177)
        defer { umask(previousMask) }
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                // A connection whose peer the kernel cannot name is closed: every request needs a caller.
                PeerCredentials.read(from: channel).flatMapThrowing { peer in
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        RequestHandler(
                            router: router, blockingPool: blockingPool, maximumBodySize: maximumBodySize, peer: peer,
                            auditor: auditor, logger: logger))
                }
            }
            .bind(unixDomainSocketPath: configuration.socketPath, cleanupExistingSocketFile: true)
            .wait()
        if let group = configuration.socketGroup {
            guard chown(configuration.socketPath, uid_t.max, group) == 0, chmod(configuration.socketPath, 0o660) == 0 else {
                let reason = String(cString: strerror(errno))
                try? channel.close().wait()
                throw SocketFile.InUse(description: "cannot give the socket to group \(group): \(reason)")
            }
        }
        self.configuration = configuration
        self.group = group
        self.quiescing = quiescing
    }

    /// Stops accepting, waits for in-flight requests to be answered, then removes the socket.
    public func shutdown() {
        let drained = group.next().makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: drained)
        try? drained.futureResult.wait()
        // With no connection open the drain completes before the listening socket has closed.
        try? channel.closeFuture.wait()
        unlink(configuration.socketPath)
    }
}
