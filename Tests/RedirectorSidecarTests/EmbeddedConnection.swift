import Logging
import NIOCore
import NIOEmbedded
import RedirectorCore
import RedirectorHealth
import RedirectorPresence
@testable import RedirectorSidecar
import Testing

/// A presence checker whose every check fails as if the network were down (no test reaches one).
func offlinePresenceChecker() -> PresenceChecker {
    struct Offline: PresenceClient {
        func head(url: String, timeout: Duration) async -> ProbeResponse { .failed(.connect, "offline test") }
    }
    return PresenceChecker(client: Offline())
}

/// A logger that writes nothing.
func quietLogger() -> Logger {
    var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}

/// The shared state of a sidecar serving the test snapshot (``TestSnapshot``) from a temporary file,
/// as a started server holds it (every listener bound); 127.0.0.1 is a trusted proxy unless the
/// configuration says otherwise.
struct TestSidecar {
    let context: SidecarContext
    var store: SnapshotStore { context.store }
    var metrics: SidecarMetrics { context.metrics }
    var snapshotPath: String { store.path }

    /// - Parameters:
    ///   - loaded: whether the snapshot file exists and is loaded (false: started with `--allow-missing-snapshot`).
    ///   - configure: changes to the default test configuration.
    init(loaded: Bool = true, _ configure: (inout SidecarConfiguration) -> Void = { _ in }) {
        let path = TestSnapshot.temporaryDirectory() + "/s.rdb"
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.trustedProxies = [IPPrefix("127.0.0.1/32")!]
        configure(&configuration)
        let metrics = SidecarMetrics()
        let store = SnapshotStore(path: path, extraTrustedProxies: configuration.trustedProxies, metrics: metrics, logger: quietLogger())
        if loaded {
            TestSnapshot.write(TestSnapshot.bytes(), to: path)
            store.reload(reason: "test")
        }
        let lifecycle = ServerLifecycle()
        lifecycle.allListenersBound()
        context = SidecarContext(translator: RequestTranslator(configuration: configuration), store: store, metrics: metrics,
                                 logger: quietLogger(), lifecycle: lifecycle, presence: offlinePresenceChecker())
    }

    /// A new client connection to a listener in `mode`, from TCP peer `peer`.
    func connect(mode: ListenerMode = .auto, peer: String = "127.0.0.1") throws -> Connection {
        try Connection(context: context, mode: mode, peer: peer)
    }
}

/// One client connection to a sidecar listener, in process: the listener's own pipeline
/// (`addSidecarConnectionHandlers(context:mode:)`) on an `EmbeddedChannel`. The embedded event loop's
/// clock, moved by ``advance(by:)``, drives the request deadlines (Envoy's budget, the request timeout),
/// so no test waits for real time.
final class Connection {
    let channel: EmbeddedChannel

    init(context: SidecarContext, mode: ListenerMode, peer: String) throws {
        channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addSidecarConnectionHandlers(context: context, mode: mode)
        channel.connect(to: try SocketAddress(ipAddress: peer, port: 50_000), promise: nil)
    }

    /// Whether the sidecar has not closed the connection.
    var isOpen: Bool { channel.isActive }

    /// Delivers `bytes` as one read from the socket.
    func send(_ bytes: String) throws {
        try channel.writeInbound(ByteBuffer(string: bytes))
    }

    /// Everything the sidecar wrote since the last call.
    func received() throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    /// The one complete response the sidecar wrote since the last read.
    func response(bodiless: Bool = false) throws -> Response {
        let responses = try #require(Response.parse(try received(), bodiless: bodiless), "not a complete HTTP response")
        #expect(responses.count == 1, "one response")
        return try #require(responses.first)
    }

    /// Sends `request` and returns the one complete response written to it.
    func exchange(_ request: String, bodiless: Bool = false) throws -> Response {
        try send(request)
        return try response(bodiless: bodiless)
    }

    /// A keep-alive HTTP/1.1 request for `target` with extra `headers` (`Name: value`).
    func request(_ target: String, method: String = "GET", headers: [String] = []) throws -> Response {
        let lines = ["\(method) \(target) HTTP/1.1", "Host: test"] + headers
        return try exchange(lines.joined(separator: "\r\n") + "\r\n\r\n", bodiless: method == "HEAD")
    }

    /// Moves the embedded event loop's clock, running the timers that come due.
    func advance(by amount: TimeAmount) {
        channel.embeddedEventLoop.advanceTime(by: amount)
    }
}

/// A response as the sidecar wrote it.
struct Response {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    /// The value of header `name` (case-insensitive), nil when absent.
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The responses in `text`, in order; nil unless `text` is a sequence of complete responses.
    ///
    /// - Parameter bodiless: answers to HEAD: `content-length` describes a body that is not sent.
    static func parse(_ text: String, bodiless: Bool = false) -> [Response]? {
        var rest = Substring(text)
        var responses: [Response] = []
        while !rest.isEmpty {
            guard let headEnd = rest.firstRange(of: "\r\n\r\n") else { return nil }
            let lines = rest[..<headEnd.lowerBound].split(separator: "\r\n", omittingEmptySubsequences: false)
            let statusLine = lines[0].split(separator: " ", maxSplits: 2)
            guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else { return nil }
            var headers: [(name: String, value: String)] = []
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { return nil }
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...].drop(while: { $0 == " " }))))
            }
            var response = Response(status: status, headers: headers, body: "")
            guard let length = response.header("content-length").flatMap({ Int($0) }) else { return nil }
            rest = rest[headEnd.upperBound...]
            let bodyLength = bodiless ? 0 : length
            guard rest.utf8.count >= bodyLength else { return nil }
            let bodyEnd = rest.utf8.index(rest.startIndex, offsetBy: bodyLength)
            response.body = String(rest[..<bodyEnd])
            rest = rest[bodyEnd...]
            responses.append(response)
        }
        return responses
    }
}
