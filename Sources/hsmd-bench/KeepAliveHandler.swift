import NIOCore
import NIOHTTP1

/// Drives one keep-alive connection: one request in flight at a time, the next sent from the
/// event loop as soon as the previous answer ends, so no thread hop sits between two requests.
/// NIOHTTP1 encodes the requests and parses the answers.
final class KeepAliveHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private enum Job {
        case idle
        case exchange(EventLoopPromise<BenchResponse>)
        case load(request: PreparedRequest, plan: RunPlan, samples: WorkerSamples, promise: EventLoopPromise<WorkerSamples>)
    }

    private var job = Job.idle
    private var context: ChannelHandlerContext?
    private var status: UInt = 0
    private var body: [UInt8] = []
    private var sentAt: UInt64 = 0

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func exchange(_ request: PreparedRequest, promise: EventLoopPromise<BenchResponse>) {
        guard let context, context.channel.isActive else { return promise.fail(ConnectionError.closed) }
        guard case .idle = job else { return promise.fail(ConnectionError.busy) }
        job = .exchange(promise)
        send(request, context)
    }

    func load(_ request: PreparedRequest, plan: RunPlan, promise: EventLoopPromise<WorkerSamples>) {
        guard let context, context.channel.isActive else { return promise.fail(ConnectionError.closed) }
        guard case .idle = job else { return promise.fail(ConnectionError.busy) }
        let expected = plan.requestsPerWorker ?? 4096
        job = .load(request: request, plan: plan, samples: WorkerSamples(expectedCount: expected), promise: promise)
        send(request, context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status.code
            body.removeAll(keepingCapacity: true)
        case .body(let buffer):
            // Load runs keep only what explains a failure; the hot path copies nothing.
            if case .load = job, (200..<300).contains(status) { return }
            body += buffer.readableBytesView
        case .end:
            answered(context, at: monotonicNanoseconds())
        }
    }

    private func answered(_ context: ChannelHandlerContext, at completedAt: UInt64) {
        switch job {
        case .idle:
            break
        case .exchange(let promise):
            job = .idle
            promise.succeed(BenchResponse(status: status, body: body))
        case .load(let request, let plan, var samples, let promise):
            if (200..<300).contains(status) {
                samples.record(sentAt: sentAt, completedAt: completedAt, plan: plan)
            } else {
                samples.recordError("HTTP \(status): \(String(decoding: body, as: UTF8.self))")
            }
            guard plan.continues(now: completedAt, measured: samples.latencies.count + samples.errors) else {
                job = .idle
                return promise.succeed(samples)
            }
            job = .load(request: request, plan: plan, samples: samples, promise: promise)
            send(request, context)
        }
    }

    private func send(_ request: PreparedRequest, _ context: ChannelHandlerContext) {
        sentAt = monotonicNanoseconds()
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let body = request.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(ConnectionError.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    private func fail(_ error: any Error) {
        switch job {
        case .idle: break
        case .exchange(let promise): promise.fail(error)
        case .load(_, _, _, let promise): promise.fail(error)
        }
        job = .idle
    }
}
