#if canImport(Glibc)
import Glibc
#endif
import Logging
import RedirectorCore
@testable import RedirectorSidecar
import Testing

/// One HTTP/1.1 exchange over a blocking loopback socket; returns (status, headers lower-cased, body).
private func exchange(port: Int, _ request: String) -> (status: Int, headers: [String: String], body: String)? {
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
    let bytes = Array(request.utf8)
    guard send(descriptor, bytes, bytes.count, 0) == bytes.count else { return nil }
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count <= 0 { break }
        received += chunk[0..<count]
    }
    var headEnd = -1
    for index in 0..<max(0, received.count - 3)
    where received[index] == 13 && received[index + 1] == 10 && received[index + 2] == 13 && received[index + 3] == 10 {
        headEnd = index
        break
    }
    guard headEnd >= 0 else { return nil }
    let head = String(decoding: received[..<headEnd], as: UTF8.self)
    let body = String(decoding: received[(headEnd + 4)...], as: UTF8.self)
    let lines = head.split(separator: "\r\n")
    guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ")[1]) else { return nil }
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].drop(while: { $0 == " " }).description }
    }
    return (status, headers, body)
}

/// The raw bytes a request gets until the server closes.
private func rawExchange(port: Int, _ request: String) -> String {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return "" }
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
    guard connected == 0 else { return "" }
    let bytes = Array(request.utf8)
    _ = send(descriptor, bytes, bytes.count, 0)
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = recv(descriptor, &chunk, chunk.count, 0)
        if count <= 0 { break }
        received += chunk[0..<count]
    }
    return String(decoding: received, as: UTF8.self)
}

private func get(port: Int, _ target: String, headers: [String] = []) -> (status: Int, headers: [String: String], body: String)? {
    exchange(port: port, (["GET \(target) HTTP/1.1", "Host: test", "Connection: close"] + headers).joined(separator: "\r\n") + "\r\n\r\n")
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
    @Test func endToEndOverLoopback() async throws {
        let directory = TestSnapshot.temporaryDirectory()
        let path = directory + "/s.rdb"
        TestSnapshot.write(TestSnapshot.bytes(), to: path)
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.listeners = [ListenerConfiguration(host: "127.0.0.1", port: 0),
                                   ListenerConfiguration(mode: .standalone, host: "127.0.0.1", port: 0)]
        configuration.trustedProxies = [IPPrefix("127.0.0.1/32")!]
        configuration.explain = true
        let server = try SidecarServer(configuration: configuration, logger: quietLogger())
        let listeners = try await server.start()
        let port = listeners[0].port
        let standalone = listeners[1].port

        let health = try #require(get(port: port, "/healthz"))
        #expect(health.status == 200 && health.body == "ok\n")
        let ready = try #require(get(port: port, "/readyz"))
        #expect(ready.status == 200 && ready.body.contains("\"ready\":true"))

        let redirect = try #require(get(port: port, "/ext_authz/v2/a?b", headers: ["X-Forwarded-For: 192.0.2.10"]))
        #expect(redirect.status == 302)
        #expect(redirect.headers["location"] == "https://registry.aws.test/v2/a?b")
        #expect(redirect.headers["content-length"] == "0")
        #expect(redirect.headers["x-redirector-explain"]?.contains("route=registry") == true)

        let allow = try #require(get(port: port, "/ext_authz/v2/a", headers: ["X-Forwarded-For: 10.1.1.1"]))
        #expect(allow.status == 200 && allow.body.isEmpty && allow.headers["location"] == nil)

        let alone = try #require(get(port: standalone, "/binaries/x", headers: ["X-Forwarded-For: 198.51.100.1"]))
        #expect(alone.status == 307 && alone.headers["location"] == "https://artifacts.gcp.test/mirror/binaries/x")
        let notFound = try #require(get(port: standalone, "/healthz"))
        #expect(notFound.status == 404, "a standalone listener decides every path")

        let explain = try #require(get(port: port, "/explain?client=2001:db8:a::1&target=%2Fv2%2Fx"))
        #expect(explain.status == 200 && explain.body.contains("provider=aws"))

        // Oversized heads are refused, not buffered without bound.
        let huge = get(port: port, "/ext_authz/v2/" + String(repeating: "a", count: 100_000))
        #expect(huge == nil || huge?.status == 400)

        let metrics = try #require(get(port: port, "/metrics"))
        #expect(metrics.body.contains("redirector_decisions_total{provider=\"aws\",outcome=\"redirect\"} 1"))
        #expect(metrics.body.contains("redirector_decision_duration_seconds_count"))
        #expect(metrics.body.contains("redirector_requests_total{endpoint=\"ext_authz\"}"))

        // A corrupt file keeps the old snapshot; readiness shows the failure.
        var corrupt = TestSnapshot.bytes()
        corrupt[100] ^= 0x55
        TestSnapshot.write(corrupt, to: path)
        #expect(!server.store.reload(reason: "test"))
        let stillReady = try #require(get(port: port, "/readyz"))
        #expect(stillReady.status == 200)
        #expect(stillReady.body.contains("\"reload_failures\":1"))
        #expect(stillReady.body.contains("checksum mismatch"))
        let stillRedirects = try #require(get(port: port, "/ext_authz/v2/a", headers: ["X-Forwarded-For: 192.0.2.10"]))
        #expect(stillRedirects.status == 302)

        await server.shutdown()
        #expect(get(port: port, "/healthz") == nil, "listeners are closed after shutdown")
    }

    @Test func pipeliningMalformedHeadsAndHTTP10() async throws {
        let directory = TestSnapshot.temporaryDirectory()
        let path = directory + "/s.rdb"
        TestSnapshot.write(TestSnapshot.bytes(), to: path)
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.listeners = [ListenerConfiguration(host: "127.0.0.1", port: 0)]
        configuration.trustedProxies = [IPPrefix("127.0.0.1/32")!]
        let server = try SidecarServer(configuration: configuration, logger: quietLogger())
        let port = try await server.start()[0].port

        // Two pipelined requests in one segment: two answers, in order (raw bytes checked below).
        let both = rawExchange(port: port, "GET /ext_authz/v2/a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.10\r\n\r\n"
                               + "HEAD /ext_authz/binaries/b HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.1\r\nConnection: close\r\n\r\n")
        #expect(both.hasPrefix("HTTP/1.1 302 Found\r\nLocation: https://registry.aws.test/v2/a\r\ncontent-length: 0\r\n\r\n"))
        #expect(both.hasSuffix("HTTP/1.1 307 Temporary Redirect\r\nLocation: https://artifacts.gcp.test/mirror/binaries/b\r\n"
                               + "connection: close\r\ncontent-length: 0\r\n\r\n"))

        let garbage = exchange(port: port, "NOT AN HTTP REQUEST\r\n\r\n")
        #expect(garbage?.status == 400)

        let old = exchange(port: port, "GET /ext_authz/v2/a HTTP/1.0\r\nX-Forwarded-For: 192.0.2.10\r\n\r\n")
        #expect(old?.status == 302 && old?.headers["connection"] == "close")

        let head = exchange(port: port, "HEAD /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(head?.status == 200 && head?.body == "" && Int(head?.headers["content-length"] ?? "0") ?? 0 > 0)
        await server.shutdown()
    }

    @Test func slowBodyIsAnsweredAtTheEnvoyDeadline() async throws {
        let directory = TestSnapshot.temporaryDirectory()
        let path = directory + "/s.rdb"
        TestSnapshot.write(TestSnapshot.bytes(), to: path)
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.listeners = [ListenerConfiguration(host: "127.0.0.1", port: 0)]
        configuration.trustedProxies = [IPPrefix("127.0.0.1/32")!]
        let server = try SidecarServer(configuration: configuration, logger: quietLogger())
        let port = try await server.start()[0].port
        let clock = ContinuousClock()
        let started = clock.now
        // Content-Length promises a body that never comes; Envoy's budget is 300 ms.
        let response = exchange(port: port, "GET /ext_authz/v2/a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.10\r\n"
                                + "x-envoy-expected-rq-timeout-ms: 300\r\nContent-Length: 10\r\n\r\n")
        let elapsed = clock.now - started
        #expect(response?.status == 302)
        #expect(response?.headers["connection"] == "close")
        #expect(elapsed < .seconds(3))
        await server.shutdown()
    }

    @Test func startFailsWithoutAValidSnapshot() async throws {
        var configuration = SidecarConfiguration(snapshotPath: "/nonexistent.rdb")
        configuration.listeners = [ListenerConfiguration(host: "127.0.0.1", port: 0)]
        let server = try SidecarServer(configuration: configuration, logger: quietLogger())
        await #expect(throws: ConfigurationError.self) { try await server.start() }
        await server.shutdown()

        configuration.allowMissingSnapshot = true
        let waiting = try SidecarServer(configuration: configuration, logger: quietLogger())
        let port = try await waiting.start()[0].port
        #expect(get(port: port, "/readyz")?.status == 503)
        #expect(get(port: port, "/ext_authz/v2/a")?.status == 200, "checks are allowed while no snapshot is loaded")
        await waiting.shutdown()
    }
}
