#if canImport(Glibc)
import Glibc
#endif
import Logging
import RedirectorCore
@testable import RedirectorSidecar
import Synchronization
import Testing

/// A `GET target` with `Connection: close` over a blocking loopback socket to `port`; nil when the
/// connection fails or the answer is not one HTTP response.
private func get(port: Int, _ target: String, headers: [String] = []) -> Response? {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = Array(((["GET \(target) HTTP/1.1", "Host: test", "Connection: close"] + headers).joined(separator: "\r\n") + "\r\n\r\n").utf8)
    guard send(descriptor, request, request.count, 0) == request.count else { return nil }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count <= 0 { break }
        received += chunk[0..<count]
    }
    guard let responses = Response.parse(String(decoding: received, as: UTF8.self)), responses.count == 1 else { return nil }
    return responses[0]
}

@Suite(.serialized) struct SnapshotStoreTests {
    @Test func reloadSwapsAndRejectsBadFiles() throws {
        let directory = TestSnapshot.temporaryDirectory()
        let path = directory + "/s.rdb"
        TestSnapshot.write(TestSnapshot.bytes(), to: path)
        let metrics = SidecarMetrics()
        let store = SnapshotStore(path: path, metrics: metrics, logger: quietLogger())
        #expect(store.current == nil)
        #expect(store.reload(reason: "startup"))
        let first = try #require(store.current)
        #expect(store.generation == 1)
        #expect(!store.reloadIfChanged(), "unchanged file is not reread")

        var corrupt = TestSnapshot.bytes(createdAt: 1_800_000_000)
        corrupt[corrupt.count / 2] ^= 0xff
        TestSnapshot.write(corrupt, to: path)
        #expect(!store.reloadIfChanged())
        #expect(store.current === first, "the old snapshot keeps serving")
        #expect(store.status.failures == 1)
        #expect(store.status.lastError?.contains("checksum") == true)
        #expect(!store.reloadIfChanged(), "a rejected version is not retried until it changes")
        #expect(store.status.failures == 1)

        TestSnapshot.write(TestSnapshot.bytes(createdAt: 1_800_000_001, awsRegistry: "https://new.aws.test"), to: path)
        #expect(store.reloadIfChanged())
        let second = try #require(store.current)
        #expect(second.snapshot.createdAt == 1_800_000_001)
        #expect(store.status.lastError == nil && store.status.successes == 2)

        let text = String(decoding: metrics.exposition(store: store, ready: true, now: 1_800_000_011), as: UTF8.self)
        #expect(text.contains("redirector_snapshot_reload_failures_total 1"))
        #expect(text.contains("redirector_snapshot_reloads_total{result=\"success\"} 2"))
        #expect(text.contains("redirector_snapshot_age_seconds 10"))
        #expect(text.contains("redirector_decisions_total{provider=\"aws\",outcome=\"redirect\"} 0"))
    }

    @Test func missingFileIsAFailure() {
        let store = SnapshotStore(path: "/nonexistent/x.rdb", metrics: SidecarMetrics(), logger: quietLogger())
        #expect(!store.reload(reason: "startup"))
        #expect(store.current == nil)
        #expect(store.status.lastError?.contains("/nonexistent/x.rdb") == true)
    }
}

@Suite(.serialized) struct ServerTests {
    /// The real server once, end to end: listeners bound on loopback in their modes, answers on the
    /// wire, listeners closed by shutdown. Everything else about the answers is tested in process
    /// (HTTPHandlerTests).
    @Test func answersOverLoopback() async throws {
        let directory = TestSnapshot.temporaryDirectory()
        let path = directory + "/s.rdb"
        TestSnapshot.write(TestSnapshot.bytes(), to: path)
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.listeners = [ListenerConfiguration(host: "127.0.0.1", port: 0),
                                   ListenerConfiguration(mode: .standalone, host: "127.0.0.1", port: 0)]
        configuration.trustedProxies = [IPPrefix("127.0.0.1/32")!]
        let server = try SidecarServer(configuration: configuration, logger: quietLogger())
        let listeners = try await server.start()
        let (port, standalone) = (listeners[0].port, listeners[1].port)

        let redirect = try #require(get(port: port, "/ext_authz/v2/a?b", headers: ["X-Forwarded-For: 192.0.2.10"]))
        #expect(redirect.status == 302 && redirect.header("location") == "https://registry.aws.test/v2/a?b")
        let alone = try #require(get(port: standalone, "/binaries/x", headers: ["X-Forwarded-For: 198.51.100.1"]))
        #expect(alone.status == 307 && alone.header("location") == "https://artifacts.gcp.test/mirror/binaries/x")

        await server.shutdown()
        #expect(get(port: port, "/healthz") == nil, "listeners are closed after shutdown")
    }

    @Test func startFailsWithoutAValidSnapshot() async throws {
        var configuration = SidecarConfiguration(snapshotPath: "/nonexistent.rdb")
        configuration.listeners = [ListenerConfiguration(host: "127.0.0.1", port: 0)]
        let server = try SidecarServer(configuration: configuration, logger: quietLogger())
        await #expect(throws: ConfigurationError.self) { try await server.start() }
        #expect(server.startupError != nil)
        await server.shutdown()

        configuration.allowMissingSnapshot = true
        let waiting = try SidecarServer(configuration: configuration, logger: quietLogger())
        #expect(try await waiting.start().count == 1, "with allowMissingSnapshot the server starts without one")
        #expect(waiting.store.current == nil)
        await waiting.shutdown()
    }
}

/// What `/readyz` answers on `server`'s listeners, asked in process through the handler every listener runs.
private func readyzStatus(_ server: SidecarServer) -> Int {
    (try? Connection(context: server.context, mode: .auto, peer: "127.0.0.1").request("/readyz").status) ?? -1
}

/// Asks `/readyz` each time the server logs "listening", which it does right after each bind and before
/// the next one: the moment a bound listener already answers while the others are not yet bound.
final class ReadinessProbe: Sendable {
    private let server = Mutex<SidecarServer?>(nil)
    private let answers = Mutex<[Int]>([])

    /// The `/readyz` statuses seen, one per "listening" record.
    var statuses: [Int] { answers.withLock { $0 } }

    /// A logger that runs the probe and writes nothing.
    var logger: Logger {
        Logger(label: "test") { _ in ListeningHook { [self] in self.ask() } }
    }

    /// The server to ask; set before it starts.
    func watch(_ server: SidecarServer) {
        self.server.withLock { $0 = server }
    }

    private func ask() {
        guard let server = server.withLock({ $0 }) else { return }
        let status = readyzStatus(server)
        answers.withLock { $0.append(status) }
    }

    private struct ListeningHook: LogHandler {
        let hook: @Sendable () -> Void
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            if event.message.description == "listening" { hook() }
        }
    }
}

@Suite(.serialized) struct ReadinessTests {
    private static func configuration(listeners: [ListenerConfiguration]) -> SidecarConfiguration {
        let path = TestSnapshot.temporaryDirectory() + "/s.rdb"
        TestSnapshot.write(TestSnapshot.bytes(), to: path)
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.listeners = listeners
        return configuration
    }

    @Test func readyOnlyOnceEveryListenerIsBound() async throws {
        let probe = ReadinessProbe()
        let server = try SidecarServer(configuration: Self.configuration(listeners: [
            ListenerConfiguration(host: "127.0.0.1", port: 0), ListenerConfiguration(host: "127.0.0.1", port: 0),
        ]), logger: probe.logger)
        probe.watch(server)
        try await server.start()
        #expect(probe.statuses.count == 2)
        #expect(probe.statuses.first == 503, "not ready while the first listener is bound and the second is not")
        #expect(readyzStatus(server) == 200)
        await server.shutdown()
        #expect(readyzStatus(server) == 503, "not ready once shutdown begins")
    }

    @Test func notReadyWhenALaterListenerFailsToBind() async throws {
        let occupant = try SidecarServer(configuration: Self.configuration(listeners: [ListenerConfiguration(host: "127.0.0.1", port: 0)]),
                                         logger: quietLogger())
        let taken = try await occupant.start()[0].port
        let probe = ReadinessProbe()
        let server = try SidecarServer(configuration: Self.configuration(listeners: [
            ListenerConfiguration(host: "127.0.0.1", port: 0), ListenerConfiguration(host: "127.0.0.1", port: taken),
        ]), logger: probe.logger)
        probe.watch(server)
        await #expect(throws: (any Error).self) { try await server.start() }
        #expect(probe.statuses == [503], "the first listener was bound, the second never was")
        #expect(readyzStatus(server) == 503)
        await server.shutdown()
        await occupant.shutdown()
    }
}
