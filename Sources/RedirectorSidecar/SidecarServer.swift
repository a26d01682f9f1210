import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import RedirectorHealth
import RedirectorPresence
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Whether the server listens on all its listeners, and whether it is shutting down (readable from any thread).
final class ServerLifecycle: Sendable {
    private let listening = Atomic<Bool>(false)
    private let shuttingDown = Atomic<Bool>(false)

    /// Every listener is bound and shutdown has not begun. A listener that is bound answers `/readyz`
    /// while the others may still be binding (or fail to), so one bound listener is not enough.
    var isServing: Bool { listening.load(ordering: .relaxed) && !isShuttingDown }

    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    /// Records that every configured listener is bound.
    func allListenersBound() { listening.store(true, ordering: .relaxed) }

    func beginShutdown() { shuttingDown.store(true, ordering: .relaxed) }
}

/// The sidecar HTTP server: every configured listener on one SwiftNIO event-loop group.
///
/// Run it in a `ServiceGroup` next to a ``SnapshotReloader``: on graceful shutdown (SIGTERM) it marks
/// itself not ready, waits ``SidecarConfiguration/shutdownDelay``, stops accepting, lets in-flight
/// requests finish (up to ``SidecarConfiguration/shutdownTimeout``) and closes.
public final class SidecarServer: Service, Sendable {
    /// The configuration served.
    public let configuration: SidecarConfiguration
    /// The snapshot holder.
    public let store: SnapshotStore
    /// The metrics.
    public let metrics: SidecarMetrics
    let logger: Logger
    let lifecycle = ServerLifecycle()
    /// What every connection's handler reads: the listeners' answers, `/readyz` included, come from here.
    let context: SidecarContext
    let group: MultiThreadedEventLoopGroup
    /// Sends the presence checks of `verify` routes, on the server's event loops.
    private let presenceClient: HTTPProbeClient
    private let bound = Mutex<[(channel: any Channel, quiesce: ServerQuiescingHelper, listener: ListenerConfiguration)]?>(nil)
    private let failure = Mutex<ConfigurationError?>(nil)

    /// Why ``start()`` refused to start, if it did.
    public var startupError: ConfigurationError? { failure.withLock { $0 } }

    /// Creates a server; nothing is loaded or bound until ``start()``.
    public init(configuration: SidecarConfiguration, logger: Logger, metrics: SidecarMetrics = SidecarMetrics()) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.store = SnapshotStore(path: configuration.snapshotPath, extraTrustedProxies: configuration.trustedProxies,
                                   maximumSourceAge: configuration.maximumSourceAge.map { Double($0.components.seconds) },
                                   metrics: metrics, logger: logger)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        self.presenceClient = HTTPProbeClient(eventLoopGroup: group)
        self.context = SidecarContext(translator: RequestTranslator(configuration: configuration), store: store,
                                      metrics: metrics, logger: logger, lifecycle: lifecycle,
                                      presence: PresenceChecker(client: presenceClient, observer: metrics.presence))
    }

    /// Loads the snapshot and binds every listener.
    ///
    /// - Returns: the listeners with their actual ports (useful with port 0).
    /// - Throws: when the snapshot is invalid (unless ``SidecarConfiguration/allowMissingSnapshot``) or a bind fails.
    @discardableResult
    public func start() async throws -> [ListenerConfiguration] {
        if let existing = bound.withLock({ $0 }) { return existing.map(\.listener) }
        if store.current == nil && !store.reload(reason: "startup") && !configuration.allowMissingSnapshot {
            let error = ConfigurationError(store.status.lastError ?? "cannot load \(configuration.snapshotPath)")
            failure.withLock { $0 = error }
            throw error
        }
        var channels: [(channel: any Channel, quiesce: ServerQuiescingHelper, listener: ListenerConfiguration)] = []
        do {
            for listener in configuration.listeners {
                let quiesce = ServerQuiescingHelper(group: group)
                let channel = try await bootstrap(listener: listener, quiesce: quiesce)
                    .bind(host: listener.host, port: listener.port).get()
                var actual = listener
                actual.port = channel.localAddress?.port ?? listener.port
                channels.append((channel, quiesce, actual))
                let host = actual.host.contains(":") ? "[\(actual.host)]" : actual.host
                logger.info("listening", metadata: ["mode": "\(listener.mode)", "address": "\(host):\(actual.port)"])
            }
        } catch {
            for entry in channels { try? await entry.channel.close() }
            throw error
        }
        bound.withLock { $0 = channels }
        lifecycle.allListenersBound()
        return channels.map(\.listener)
    }

    private func bootstrap(listener: ListenerConfiguration, quiesce: ServerQuiescingHelper) -> ServerBootstrap {
        let context = self.context
        let mode = listener.mode
        return ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addSidecarConnectionHandlers(context: context, mode: mode)
                }
            }
    }

    /// Starts (see ``start()``), runs until graceful shutdown (or cancellation), then shuts down.
    public func run() async throws {
        do {
            try await start()
        } catch {
            await shutdown()
            throw error
        }
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled: shut down all the same.
        }
        await shutdown()
    }

    /// Stops accepting, finishes in-flight requests and releases the threads. Safe to call more than once.
    public func shutdown() async {
        lifecycle.beginShutdown()
        await closeListeners()
        await presenceClient.shutdown()
        // Only after closeListeners() returned: releasing a quiescing helper completes a promise on its event
        // loop, which a stopped loop refuses (NIO prints an error, and means to make it a crash).
        try? await group.shutdownGracefully()
    }

    /// Waits ``SidecarConfiguration/shutdownDelay``, stops accepting and lets in-flight requests finish
    /// (up to ``SidecarConfiguration/shutdownTimeout``); the listeners and their quiescing helpers are
    /// released when it returns.
    private func closeListeners() async {
        let channels = bound.withLock { state -> [(channel: any Channel, quiesce: ServerQuiescingHelper, listener: ListenerConfiguration)] in
            defer { state = [] }
            return state ?? []
        }
        guard !channels.isEmpty else { return }
        logger.info("shutting down", metadata: ["delay": "\(configuration.shutdownDelay)"])
        if configuration.shutdownDelay > .zero {
            try? await Task.sleep(for: configuration.shutdownDelay)
        }
        let quiesced = channels.map { entry in
            let promise = group.next().makePromise(of: Void.self)
            entry.quiesce.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        let all = EventLoopFuture.andAllComplete(quiesced, on: group.next())
        let timeout = configuration.shutdownTimeout
        let finished = await withTaskGroup(of: Bool.self) { tasks in
            tasks.addTask { (try? await all.get()) != nil }
            tasks.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await tasks.next() ?? false
            tasks.cancelAll()
            return first
        }
        if !finished {
            logger.warning("in-flight requests did not finish before the shutdown timeout; closing")
        }
        logger.info("stopped")
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the handlers of one sidecar connection: the idle timeout, the bounded HTTP/1 request decoder and
    /// ``SidecarHTTPHandler``. Every accepted connection gets exactly this pipeline, so a connection built
    /// with it in process (on an `EmbeddedChannel`) behaves as one a listener accepted.
    func addSidecarConnectionHandlers(context: SidecarContext, mode: ListenerMode) throws {
        let configuration = context.configuration
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maximumHeaderBytes
        limits.maxHeaderFieldSize = configuration.maximumHeaderBytes
        limits.maxHeaderFieldCount = 256
        try addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout.timeAmount))
        // The buffer limit also bounds the request line, which the header limits do not cover.
        try addHandler(ByteToMessageHandler(
            HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop,
                               limitConfiguration: limits),
            maximumBufferSize: configuration.maximumHeaderBytes &* 2))
        try addHandler(SidecarHTTPHandler(context: context, mode: mode))
    }
}

/// Reloads the snapshot on SIGHUP and when its file changes.
///
/// A change is noticed by polling the file's device, inode, size and modification time (which also
/// follows Kubernetes' ConfigMap symlink swaps); the file must then stay unchanged for a short settle
/// time, so a file being written is not read half-way.
public struct SnapshotReloader: Service {
    /// The store to reload.
    public let store: SnapshotStore
    /// Polling interval; nil disables polling.
    public let interval: Duration?
    /// The SIGHUP sequence, when SIGHUP triggers a reload.
    public let signals: UnixSignalsSequence?
    /// How long a changed file must stay unchanged before it is read.
    public let settleTime: Duration

    /// Creates a reloader. Create `signals` (`await UnixSignalsSequence(trapping: .sighup)`) before the
    /// server listens: a SIGHUP arriving before its handler exists would end the process.
    public init(store: SnapshotStore, interval: Duration?, signals: UnixSignalsSequence?, settleTime: Duration = .milliseconds(200)) {
        self.store = store
        self.interval = interval
        self.signals = signals
        self.settleTime = settleTime
    }

    /// Runs until graceful shutdown or cancellation.
    public func run() async throws {
        let store = self.store
        let interval = self.interval
        let settleTime = self.settleTime
        let signals = self.signals
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { tasks in
                if let signals {
                    tasks.addTask {
                        for await _ in signals {
                            store.logger.info("SIGHUP received: reloading the snapshot")
                            store.reload(reason: "SIGHUP")
                        }
                    }
                }
                if let interval {
                    tasks.addTask {
                        while !Task.isCancelled {
                            do { try await Task.sleep(for: interval) } catch { return }
                            await Self.poll(store: store, settleTime: settleTime)
                        }
                    }
                }
                await tasks.waitForAll()
            }
        }
    }

    /// One poll: reloads a changed file once it has settled.
    static func poll(store: SnapshotStore, settleTime: Duration) async {
        guard let identity = FileIdentity.of(path: store.path), store.isNew(identity) else { return }
        do { try await Task.sleep(for: settleTime) } catch { return }
        guard FileIdentity.of(path: store.path) == identity else { return }  // still being written: next poll
        store.reloadIfChanged()
    }
}
