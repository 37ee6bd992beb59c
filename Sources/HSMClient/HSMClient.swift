import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for hsmd's Unix socket, for hsmctl and the tests. One connection per
/// request; it blocks the calling thread, which must not be an event loop.
public struct HSMClient: Sendable {
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    public func send(
        _ method: HTTPMethod, _ target: String, body: [UInt8]? = nil, headers extraHeaders: [(String, String)] = []
    ) throws -> HSMResponse {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: HSMResponse.self)
        let channel: any Channel
        do {
            channel = try ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .wait()
        } catch {
            promise.fail(error)
            throw HSMClientError.cannotConnect(socketPath: socketPath, reason: "\(error)")
        }
        defer { channel.close(promise: nil) }
        var headers = HTTPHeaders([("host", "localhost"), ("content-length", "\(body?.count ?? 0)")] + extraHeaders)
        if body != nil { headers.add(name: "content-type", value: "application/json") }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil)).cascadeFailure(to: promise)
        channel.closeFuture.whenComplete { _ in promise.fail(HSMClientError.connectionClosed) }
        return try promise.futureResult.wait()
    }
}

public struct HSMResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

public enum HSMClientError: Error, CustomStringConvertible {
    case cannotConnect(socketPath: String, reason: String)
    case connectionClosed

    public var description: String {
        switch self {
        case let .cannotConnect(path, reason): "cannot reach hsmd at \(path): \(reason)"
        case .connectionClosed: "hsmd closed the connection before answering"
        }
    }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<HSMResponse>
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<HSMResponse>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(let buffer):
            body += buffer.readableBytesView
        case .end:
            guard let head else { return }
            promise.succeed(HSMResponse(
                status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
