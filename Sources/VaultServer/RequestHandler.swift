import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Reads one request at a time from a connection (the pipelining handler in front of it orders
/// them), runs its route on the blocking pool (so the event loop never waits on the token), and
/// writes the answer once its audit record is durable (so neither waits on an fsync).
///
/// It also guards the daemon's capacity: a connection past the limit, or a request arriving while
/// the pool's queue is full, is answered 503 with Retry-After at once; a client that does not
/// finish sending its next request within the client timeout is answered 408 (mid-request) or
/// disconnected (idle), so a client trickling bytes holds no more than a connection slot.
final class RequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: Router
    private let blockingPool: NIOThreadPool
    private let maximumBodySize: Int
    private let caller: Caller
    private let authentication: BearerAuthentication?
    private let auditor: (any RequestAuditor)?
    private let admission: Admission
    private let clientTimeout: TimeAmount
    private let logger: Logger

    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false
    private var overCapacity = false
    /// Set once an answer says `connection: close`: bytes the client pipelined after it are ignored.
    private var closing = false
    /// Armed while hsmd waits for the client's next request, from the connection's start or the last answer.
    private var clientDeadline: Scheduled<Void>?

    init(
        router: Router, blockingPool: NIOThreadPool, maximumBodySize: Int, caller: Caller,
        authentication: BearerAuthentication?, auditor: (any RequestAuditor)?, admission: Admission,
        clientTimeout: TimeAmount, logger: Logger
    ) {
        self.admission = admission
        self.clientTimeout = clientTimeout
        self.caller = caller
        self.authentication = authentication
        self.auditor = auditor
        self.router = router
        self.blockingPool = blockingPool
        self.maximumBodySize = maximumBodySize
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        overCapacity = !admission.openConnection()
        if overCapacity { RequestMetrics.rejectedCounter("too_many_connections").increment() }
        armClientDeadline(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        admission.closeConnection()
        clientDeadline?.cancel()
    }

    private func armClientDeadline(context: ChannelHandlerContext) {
        clientDeadline?.cancel()
        let onLoop = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        clientDeadline = context.eventLoop.scheduleTask(in: clientTimeout) {
            let (handler, context) = onLoop.value
            handler.clientTimedOut(context: context)
        }
    }

    /// A request that could not be parsed was answered by ProtocolErrorResponder, and the connection
    /// is closing: nothing more may be written for it.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        head = nil
        body = nil
        clientDeadline?.cancel()
        clientDeadline = nil
        context.fireErrorCaught(error)
    }

    /// Mid-request, the client hears why; between requests, an idle connection simply closes.
    private func clientTimedOut(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        RequestMetrics.rejectedCounter("client_timeout").increment()
        guard head != nil else {
            context.close(promise: nil)
            return
        }
        head = nil
        body = nil
        closing = true
        let timeout = Response.error(
            .requestTimeout, code: "RequestTimeout",
            message: "the request did not arrive completely within \(clientTimeout.nanoseconds / 1_000_000_000) seconds")
        writeDirectly(timeout, keepAlive: false, context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
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
            clientDeadline?.cancel()
            clientDeadline = nil
            if overCapacity {
                reject(.error(.serviceUnavailable, code: "TooManyConnections",
                              message: "hsmd has \(admission.maximumConnections) connections open; retry shortly or reuse a connection"),
                       context: context)
            } else if !admission.admitRequest() {
                RequestMetrics.rejectedCounter("saturated").increment()
                reject(.error(.serviceUnavailable, code: "ServerBusy",
                              message: "hsmd has \(admission.maximumPendingRequests) requests waiting; retry shortly"),
                       context: context)
            } else {
                respond(to: head, context: context)
            }
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let started = DispatchTime.now()
        RequestMetrics.inFlight.increment()
        let received = Request(head: head, body: body, caller: caller, requestID: UUID().uuidString.lowercased())
        body = nil
        // CONNECT asks for a tunnel; NIO encodes the answer to it as one (no body, no end), so the
        // connection must close after it.
        let keepAlive = head.isKeepAlive && !bodyTooLarge && head.method != .CONNECT
        closing = !keepAlive
        let (handler, request, servesWhileDegraded) = admit(received)
        let auditor = self.auditor
        let logger = self.logger
        let onLoop = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let answered = context.eventLoop.makePromise(of: Response.self)
        answered.futureResult.whenSuccess { response in
            let (handler, context) = onLoop.value
            handler.admission.finishRequest()
            handler.write(response, for: request, keepAlive: keepAlive, context: context)
            RequestMetrics.inFlight.decrement()
            RequestMetrics.record(
                operation: response.audit?.operation ?? "unrouted", status: response.status.code,
                keyType: response.audit?.keyType, startedAt: started.uptimeNanoseconds)
        }
        // The pool thread runs the route and queues the audit record, then is free: the answer
        // goes out from the audit log's writer once the record is durable, straight to the event loop.
        blockingPool.submit { state in
            guard state == .active else {
                answered.succeed(.error(.serviceUnavailable, code: "ServiceUnavailable", message: "hsmd is shutting down"))
                return
            }
            let refused = !servesWhileDegraded && !(auditor?.isAvailable ?? true)
            let response: Response
            if refused {
                RequestMetrics.rejectedCounter("audit_unavailable").increment()
                response = .error(.serviceUnavailable, code: "AuditLogUnavailable",
                                  message: "hsmd cannot write its audit log, so it refuses requests until it can")
            } else {
                response = Self.run(handler, request, logger: logger)
            }
            guard let auditor else { return answered.succeed(response) }
            let elapsed = Int((DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1000)
            auditor.record(request, response, latencyMicroseconds: elapsed) { failure in
                guard let failure else { return answered.succeed(response) }
                logger.critical("audit log write failed; refusing requests until it can be written", metadata: ["error": "\(failure)"])
                // A refused or unavailable answer did nothing, so the caller may simply retry later;
                // health, readiness and metrics only read, and must still say what is wrong.
                if refused || servesWhileDegraded || response.status == .serviceUnavailable { return answered.succeed(response) }
                var unknown = Response.error(
                    .internalServerError, code: "AuditLogUnavailable",
                    message: "hsmd could not write its audit log; the outcome of this request is unknown to the caller (request id \(request.requestID))")
                unknown.audit = response.audit
                answered.succeed(unknown)
            }
        }
    }

    private static func run(_ handler: RouteHandler, _ request: Request, logger: Logger) -> Response {
        switch handler {
        case .immediate(let respond):
            return respond(request)
        case .blocking(let respond):
            do {
                return try respond(request)
            } catch {
                // Routes map every expected failure themselves; this is a bug, not the caller's fault.
                logger.error("unhandled error in a route", metadata: ["request_id": "\(request.requestID)", "error": "\(error)"])
                return .error(.internalServerError, code: "InternalError", message: "hsmd failed to handle the request (request id \(request.requestID))")
            }
        }
    }

    /// Routes a request and, on HTTPS, authenticates it unless its route is public: the handler to
    /// run and the request it runs on.
    private func admit(_ received: Request) -> (RouteHandler, Request, servesWhileDegraded: Bool) {
        if bodyTooLarge { return (Self.tooLarge(maximumBodySize), received, false) }
        let routed = router.route(received)
        guard let authentication, !routed.isPublic else { return (routed.handler, routed.request, routed.servesWhileDegraded) }
        switch authentication.authenticate(routed.request) {
        case .success(let authenticated): return (routed.handler, authenticated, routed.servesWhileDegraded)
        case .failure(let failure): return (.immediate { _ in failure.response }, routed.request, false)
        }
    }

    private static func tooLarge(_ limit: Int) -> RouteHandler {
        .immediate { _ in
            .error(.payloadTooLarge, code: "RequestTooLarge", message: "the request body exceeds the limit of \(limit) bytes")
        }
    }

    /// Turns a request away before it reaches the pool (so it is counted, not audited: the audit
    /// log is behind the same pool), and closes the connection.
    private func reject(_ response: Response, context: ChannelHandlerContext) {
        body = nil
        closing = true
        var response = response
        response.headers.add(name: "retry-after", value: "1")
        writeDirectly(response, keepAlive: false, context: context)
    }

    private func writeDirectly(_ response: Response, keepAlive: Bool, context: ChannelHandlerContext) {
        var response = response
        response.headers.add(name: "x-ms-request-id", value: UUID().uuidString.lowercased())
        write(response, keepAlive: keepAlive, context: context)
    }

    private func write(_ response: Response, for request: Request, keepAlive: Bool, context: ChannelHandlerContext) {
        var response = response
        response.headers.add(name: "x-ms-request-id", value: request.requestID)
        write(response, keepAlive: keepAlive, context: context)
    }

    private func write(_ response: Response, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = response.headers
        headers.add(name: "content-length", value: "\(response.body.count)")
        if !response.body.isEmpty && !headers.contains(name: "content-type") {
            headers.add(name: "content-type", value: "application/json; charset=utf-8")
        }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            armClientDeadline(context: context)
        } else {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
