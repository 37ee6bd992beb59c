import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection to hsmd's Unix socket: one per worker, reused for every request.
struct KeepAliveConnection: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<KeepAliveHandler>

    static func connect(socketPath: String, on eventLoop: any EventLoop) throws -> KeepAliveConnection {
        let channel = try ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(KeepAliveHandler())
                }
            }
            .connect(unixDomainSocketPath: socketPath)
            .wait()
        let handler = try channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: KeepAliveHandler.self), eventLoop: channel.eventLoop)
        }.wait()
        return KeepAliveConnection(channel: channel, handler: handler)
    }

    /// False once either side closed it (hsmd closes connections idle for its client timeout).
    var isActive: Bool { channel.isActive }

    /// Sends one request and waits for its whole answer.
    func exchange(_ request: PreparedRequest) throws -> BenchResponse {
        let promise = channel.eventLoop.makePromise(of: BenchResponse.self)
        channel.eventLoop.execute { [handler] in handler.value.exchange(request, promise: promise) }
        return try promise.futureResult.wait()
    }

    /// Sends the request back to back until the plan ends; the future completes with the samples.
    func load(_ request: PreparedRequest, plan: RunPlan) -> EventLoopFuture<WorkerSamples> {
        let promise = channel.eventLoop.makePromise(of: WorkerSamples.self)
        channel.eventLoop.execute { [handler] in handler.value.load(request, plan: plan, promise: promise) }
        return promise.futureResult
    }

    func close() {
        channel.close(promise: nil)
    }
}
