import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Reads one request at a time from a connection (the pipelining handler in front of it orders
/// them), runs its route, and writes the answer. Token work goes to the blocking pool so the event
/// loop never waits on the token.
final class RequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: Router
    private let blockingPool: NIOThreadPool
    private let maximumBodySize: Int
    private let logger: Logger

    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false

    init(router: Router, blockingPool: NIOThreadPool, maximumBodySize: Int, logger: Logger) {
        self.router = router
        self.blockingPool = blockingPool
        self.maximumBodySize = maximumBodySize
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
            bodyTooLarge = false
        case .body(var chunk):
            guard !bodyTooLarge else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > maximumBodySize {
                bodyTooLarge = true
                body = nil
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let received = Request(head: head, body: body, requestID: UUID().uuidString.lowercased())
        body = nil
        let keepAlive = head.isKeepAlive && !bodyTooLarge
        if bodyTooLarge {
            write(
                .error(.payloadTooLarge, code: "RequestTooLarge",
                       message: "the request body exceeds the limit of \(maximumBodySize) bytes"),
                for: received, keepAlive: false, context: context)
            return
        }
        let (handler, request) = router.route(received)
        switch handler {
        case .immediate(let respond):
            write(respond(request), for: request, keepAlive: keepAlive, context: context)
        case .blocking(let respond):
            let logger = self.logger
            let onLoop = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            blockingPool.runIfActive(eventLoop: context.eventLoop) {
                do {
                    return try respond(request)
                } catch {
                    // Routes map every expected failure themselves; this is a bug, not the caller's fault.
                    logger.error("unhandled error in a route", metadata: ["request_id": "\(request.requestID)", "error": "\(error)"])
                    return .error(.internalServerError, code: "InternalError", message: "hsmd failed to handle the request (request id \(request.requestID))")
                }
            }.whenComplete { result in
                let response = (try? result.get())
                    ?? .error(.serviceUnavailable, code: "ServiceUnavailable", message: "hsmd is shutting down")
                let (handler, context) = onLoop.value
                handler.write(response, for: request, keepAlive: keepAlive, context: context)
            }
        }
    }

    private func write(_ response: Response, for request: Request, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = response.headers
        headers.add(name: "x-ms-request-id", value: request.requestID)
        headers.add(name: "content-length", value: "\(response.body.count)")
        if !response.body.isEmpty { headers.add(name: "content-type", value: "application/json; charset=utf-8") }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
