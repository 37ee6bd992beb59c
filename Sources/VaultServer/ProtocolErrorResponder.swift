import Foundation
import NIOCore
import NIOHTTP1

/// Answers bytes that are not HTTP/1.1 with Azure's error shape instead of a bare 400, then
/// closes the connection: 431 when the head is larger than the server accepts, 400
/// otherwise. Stands where NIO's HTTPServerProtocolErrorHandler would, after the pipelining handler.
final class ProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// More fields than any client of this API sends; each is a separate allocation in the decoder.
    static let maximumHeaderFields = 100
    private let maximumHeaderBytes: Int
    private var responseUnderway = false
    /// A request or an answer said `connection: close`: what the client sent after it gets no answer.
    private var closing = false
    private var lastRequestAsksToClose = false

    init(maximumHeaderBytes: Int) {
        self.maximumHeaderBytes = maximumHeaderBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A request that asks to close is the connection's last: once it has arrived whole, whatever
        // bytes follow are not a request, and their parse error must not cut its answer off.
        switch unwrapInboundIn(data) {
        case .head(let head): lastRequestAsksToClose = !head.isKeepAlive
        case .end: if lastRequestAsksToClose { closing = true }
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if closing { return }
        // A response already begun cannot be replaced, and after a closing one nothing more is said.
        if !responseUnderway && !closing {
            let response: Response = parserError == .headerOverflow
                ? .error(.requestHeaderFieldsTooLarge, code: "RequestHeaderFieldsTooLarge",
                         message: "the request's head exceeds the limits: \(maximumHeaderBytes) bytes and \(Self.maximumHeaderFields) header fields")
                : .error(.badRequest, code: "BadRequest", message: "the request is not valid HTTP/1.1 (\(parserError))")
            RequestMetrics.rejectedCounter("malformed").increment()
            var headers = HTTPHeaders([("connection", "close"), ("content-type", "application/json; charset=utf-8")])
            headers.add(name: "content-length", value: "\(response.body.count)")
            headers.add(name: "x-ms-request-id", value: UUID().uuidString.lowercased())
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.fireErrorCaught(error)
        // The decoder reads nothing more from this connection: close it once the answer is out.
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        // hsmd sends no informational (1xx) responses, so every head starts a real one.
        case .head(let head):
            responseUnderway = true
            if head.headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "close" }) { closing = true }
        case .end: responseUnderway = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
