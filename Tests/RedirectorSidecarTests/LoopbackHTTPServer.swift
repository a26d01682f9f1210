import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A tiny HTTP/1.1 server on 127.0.0.1 (a free port) that answers every request with an empty body
/// and the status it is told, after the delay it is told, counting the requests: the member a real
/// probe checks.
final class LoopbackHTTPServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let shared: Shared

    /// What the server and its handlers share.
    private final class Shared: Sendable {
        let status: Atomic<Int>
        let requests = Atomic(0)
        let delay: TimeAmount

        init(status: Int, delay: TimeAmount) {
            self.status = Atomic(status)
            self.delay = delay
        }
    }

    /// The port it listens on.
    let port: Int

    /// Starts a server answering `status`, each answer `delay` after its request.
    init(status: Int = 200, delay: TimeAmount = .zero) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let shared = Shared(status: status, delay: delay)
        self.group = group
        self.shared = shared
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(Handler(shared: shared))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            self.channel = channel
            port = channel.localAddress?.port ?? 0
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Answers `code` from now on.
    func answer(_ code: Int) { shared.status.store(code, ordering: .relaxed) }

    /// Requests answered so far.
    var requests: Int { shared.requests.load(ordering: .relaxed) }

    /// `http://127.0.0.1:<port><path>`.
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Closes the listener and stops the thread.
    func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        private let shared: Shared

        init(shared: Shared) {
            self.shared = shared
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            shared.requests.add(1, ordering: .relaxed)
            var headers = HTTPHeaders()
            headers.add(name: "content-length", value: "0")
            let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: shared.status.load(ordering: .relaxed)),
                                        headers: headers)
            let bound = NIOLoopBound((context, self), eventLoop: context.eventLoop)
            context.eventLoop.assumeIsolated().scheduleTask(in: shared.delay) {
                let (context, handler) = bound.value
                context.write(handler.wrapOutboundOut(.head(head)), promise: nil)
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
