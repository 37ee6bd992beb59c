import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL

/// HTTP/1.1 on hsmd's Unix socket, or HTTPS on a TCP port: the same routes either way. Shutting down
/// stops accepting, lets every in-flight request finish and be answered, then closes the connections.
/// The event loop group belongs to the caller and must outlive the server (the quiescing helper
/// completes a promise on it when freed).
public final class HTTPServer: Sendable {
    public enum Listener: Sendable {
        /// The kernel names each caller (`SO_PEERCRED`). With a group, the socket is 0660 and owned by
        /// it, so its members can connect (RBAC then decides what they may do); else 0600.
        case unixSocket(path: String, group: gid_t?)
        /// TLS on host:port; each request proves its caller with a bearer token.
        case https(host: String, port: Int, tls: NIOSSLContext, authentication: BearerAuthentication)
        /// A listening Unix socket someone else made and bound (systemd socket activation): the same
        /// as `unixSocket`, except that its file and mode belong to whoever made it.
        case inheritedUnixSocket(descriptor: Int32)
        /// Plain HTTP on a loopback address; each connection's caller is the uid owning its socket.
        case loopback(host: String, port: Int)
    }

    public struct Configuration: Sendable {
        public var listener: Listener
        public var maximumBodySize = 1 << 20
        /// The largest request head (request line and headers); a larger one gets 431.
        public var maximumHeaderSize = 32 << 10
        /// How long a client may take to send its next request in full; then 408, or a close when idle.
        public var clientTimeout = TimeAmount.seconds(60)
        /// Connection and queue limits, shared with the daemon's other listeners.
        public var admission = Admission(maximumConnections: 512, maximumPendingRequests: 256)

        public init(listener: Listener) {
            self.listener = listener
        }
    }

    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let quiescing: ServerQuiescingHelper
    private let channel: any Channel

    /// Binds and starts serving.
    public init(
        configuration: Configuration, router: Router, group: any EventLoopGroup, blockingPool: NIOThreadPool,
        auditor: (any RequestAuditor)? = nil, logger: Logger
    ) throws {
        let quiescing = ServerQuiescingHelper(group: group)
        let maximumBodySize = configuration.maximumBodySize
        let maximumHeaderSize = configuration.maximumHeaderSize
        let clientTimeout = configuration.clientTimeout
        let admission = configuration.admission
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
        @Sendable func addHTTP(_ channel: any Channel, _ caller: Caller, _ authentication: BearerAuthentication?) throws {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderListSize = maximumHeaderSize
            limits.maxHeaderFieldSize = maximumHeaderSize
            limits.maxHeaderFieldCount = ProtocolErrorResponder.maximumHeaderFields
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withErrorHandling: false, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try channel.pipeline.syncOperations.addHandler(ProtocolErrorResponder(maximumHeaderBytes: maximumHeaderSize))
            try channel.pipeline.syncOperations.addHandler(
                RequestHandler(
                    router: router, blockingPool: blockingPool, maximumBodySize: maximumBodySize, caller: caller,
                    authentication: authentication, auditor: auditor, admission: admission, clientTimeout: clientTimeout,
                    logger: logger))
        }
        switch configuration.listener {
        case let .unixSocket(path, socketGroup):
            try SocketFile.prepare(path)
            // The socket file is born 0600: no window in which others could connect before a chmod.
            let previousMask = umask(0o177)
            defer { umask(previousMask) }
            channel = try bootstrap
                .childChannelInitializer { channel in
                    // A connection whose peer the kernel cannot name is closed: every request needs a caller.
                    PeerCredentials.read(from: channel).flatMapThrowing { peer in try addHTTP(channel, .socket(peer), nil) }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
                .wait()
            if let socketGroup {
                guard chown(path, uid_t.max, socketGroup) == 0, chmod(path, 0o660) == 0 else {
                    let reason = String(cString: strerror(errno))
                    try? channel.close().wait()
                    throw SocketFile.InUse(description: "cannot give the socket to group \(socketGroup): \(reason)")
                }
            }
        case let .inheritedUnixSocket(descriptor):
            channel = try bootstrap
                .childChannelInitializer { channel in
                    PeerCredentials.read(from: channel).flatMapThrowing { peer in try addHTTP(channel, .socket(peer), nil) }
                }
                .withBoundSocket(descriptor)
                .wait()
        case let .https(host, port, tls, authentication):
            channel = try bootstrap
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        try addHTTP(channel, .network(remote: channel.remoteAddress?.description ?? "unknown"), authentication)
                    }
                }
                .bind(host: host, port: port)
                .wait()
        case let .loopback(host, port):
            channel = try bootstrap
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let uid = try LoopbackPeer.uid(local: channel.localAddress, remote: channel.remoteAddress)
                        try addHTTP(channel, .loopback(uid: uid), nil)
                    }
                }
                .bind(host: host, port: port)
                .wait()
        }
        self.configuration = configuration
        self.group = group
        self.quiescing = quiescing
    }

    /// Stops accepting, waits for in-flight requests to be answered, then removes a Unix socket.
    public func shutdown() {
        let drained = group.next().makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: drained)
        try? drained.futureResult.wait()
        // With no connection open the drain completes before the listening socket has closed.
        try? channel.closeFuture.wait()
        if case .unixSocket(let path, _) = configuration.listener { unlink(path) }
    }
}
