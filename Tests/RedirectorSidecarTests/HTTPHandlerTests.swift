import NIOCore
import RedirectorCore
@testable import RedirectorSidecar
import Testing

/// `X-Forwarded-For` of an AWS us-east-1 client (the test snapshot's 192.0.2.0/24).
private let awsClient = "X-Forwarded-For: 192.0.2.10"
/// `X-Forwarded-For` of a GCP client (198.51.100.0/24).
private let gcpClient = "X-Forwarded-For: 198.51.100.1"

@Suite struct OperationsEndpointTests {
    @Test func healthzAnswersOK() throws {
        let connection = try TestSidecar().connect()
        let health = try connection.request("/healthz")
        #expect(health.status == 200 && health.body == "ok\n")
        #expect(health.header("content-type") == "text/plain" && health.header("content-length") == "3")
        #expect(connection.isOpen)
    }

    @Test func readyzNamesTheSnapshotAndTheReloadHistory() throws {
        let sidecar = TestSidecar()
        let ready = try sidecar.connect().request("/readyz")
        #expect(ready.status == 200)
        #expect(ready.header("content-type") == "application/json")
        #expect(ready.body.hasPrefix("{\"ready\":true,\"shutting_down\":false,\"snapshot\":{\"path\":\"\(sidecar.snapshotPath)\","))
        #expect(ready.body.contains("\"created_at\":1700000000,"))
        #expect(ready.body.contains("\"prefixes_v4\":5,\"prefixes_v6\":1}"))
        #expect(ready.body.hasSuffix(",\"reloads\":1,\"reload_failures\":0,\"last_reload_error\":null}\n"))
    }

    @Test func withoutASnapshotReadyzIsNotReadyAndChecksAreAllowed() throws {
        let sidecar = TestSidecar(loaded: false)
        let connection = try sidecar.connect()
        let ready = try connection.request("/readyz")
        #expect(ready.status == 503)
        #expect(ready.body.hasPrefix("{\"ready\":false,\"shutting_down\":false,\"snapshot\":null,"))
        #expect(ready.body.contains("\"reloads\":0"))
        let check = try connection.request("/ext_authz/v2/a", headers: [awsClient])
        #expect(check.status == 200 && check.header("location") == nil, "checks are allowed while no snapshot is loaded")
        let standalone = try sidecar.connect(mode: .standalone).request("/v2/a", headers: [awsClient])
        #expect(standalone.status == 503 && standalone.header("retry-after") == "5")
    }

    @Test func rejectedReloadKeepsServingAndShowsInReadiness() throws {
        let sidecar = TestSidecar()
        var corrupt = TestSnapshot.bytes()
        corrupt[100] ^= 0x55
        TestSnapshot.write(corrupt, to: sidecar.snapshotPath)
        #expect(!sidecar.store.reload(reason: "test"))
        let connection = try sidecar.connect()
        let ready = try connection.request("/readyz")
        #expect(ready.status == 200, "a rejected reload does not make the sidecar unready")
        #expect(ready.body.contains("\"reload_failures\":1"))
        #expect(ready.body.contains("checksum mismatch"))
        let redirect = try connection.request("/ext_authz/v2/a", headers: [awsClient])
        #expect(redirect.status == 302, "the previous snapshot keeps serving")
    }

    @Test func metricsCountDecisionsRequestsAndDurations() throws {
        let connection = try TestSidecar().connect()
        #expect(try connection.request("/ext_authz/v2/a", headers: [awsClient]).status == 302)
        let metrics = try connection.request("/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.header("content-type") == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.body.contains("redirector_decisions_total{provider=\"aws\",outcome=\"redirect\"} 1\n"))
        #expect(metrics.body.contains("redirector_decision_duration_seconds_count 1\n"))
        #expect(metrics.body.contains("redirector_requests_total{endpoint=\"ext_authz\"} 1\n"))
        #expect(metrics.body.contains("redirector_requests_total{endpoint=\"metrics\"} 1\n"))
        #expect(metrics.body.contains("redirector_ready 1.0\n"))
    }

    @Test func explainDecodesItsQuery() throws {
        let connection = try TestSidecar { $0.explain = true }.connect()
        let explain = try connection.request("/explain?client=2001:db8:a::1&target=%2Fv2%2Fx")
        #expect(explain.status == 200 && explain.header("content-type") == "text/plain")
        #expect(explain.body.contains("provider=aws"))
        #expect(explain.body.contains("route=registry"))
        #expect(explain.body.hasSuffix(" client=2001:db8:a::1\n"))
        #expect(try TestSidecar().connect().request("/explain?client=2001:db8:a::1").status == 404, "explain is off by default")
    }

    @Test func unknownPathsAre404() throws {
        let notFound = try TestSidecar().connect().request("/v2/a", headers: [awsClient])
        #expect(notFound.status == 404 && notFound.body == "not found\n")
    }
}

@Suite struct DecisionAnswerTests {
    @Test func extAuthzRedirectCarriesLocationAndExplanation() throws {
        let connection = try TestSidecar { $0.explain = true }.connect()
        let redirect = try connection.request("/ext_authz/v2/a?b", headers: [awsClient])
        #expect(redirect.status == 302)
        #expect(redirect.header("location") == "https://registry.aws.test/v2/a?b")
        #expect(redirect.header("content-length") == "0" && redirect.body.isEmpty)
        #expect(redirect.header("x-redirector-explain")?.contains("route=registry") == true)
        #expect(connection.isOpen)
    }

    @Test func extAuthzAllowIsExactly200WithoutLocation() throws {
        let allow = try TestSidecar().connect().request("/ext_authz/v2/a", headers: ["X-Forwarded-For: 10.1.1.1"])
        #expect(allow.status == 200 && allow.body.isEmpty && allow.header("location") == nil)
        #expect(allow.headers.map(\.name) == ["content-length"])
    }

    @Test func extAuthzListenerChecksEveryPath() throws {
        let connection = try TestSidecar().connect(mode: .extAuthz)
        #expect(try connection.request("/v2/a", headers: [awsClient]).header("location") == "https://registry.aws.test/v2/a")
        #expect(try connection.request("/ext_authz/v2/b", headers: [awsClient]).header("location") == "https://registry.aws.test/v2/b",
                "a configured prefix is still stripped")
    }

    @Test func untrustedPeerChoosesNoMirror() throws {
        let spoofed = try TestSidecar().connect(peer: "127.0.0.9").request("/ext_authz/v2/a", headers: [awsClient])
        #expect(spoofed.status == 200, "X-Forwarded-For from an untrusted peer is ignored")
        let direct = try TestSidecar().connect(peer: "127.0.0.2").request("/ext_authz/v2/a")
        #expect(direct.status == 302, "the untrusted peer itself is the client (127.0.0.2 is aws in the test snapshot)")
    }

    @Test func forwardAuthRedirectsFromTheForwardedRequest() throws {
        let headers = ["X-Forwarded-Method: GET", "X-Forwarded-Uri: /v2/x?y=1", "X-Forwarded-Host: mirror.test", awsClient]
        let redirect = try TestSidecar().connect().request("/forward-auth?caddy=copies-this", headers: headers)
        #expect(redirect.status == 302 && redirect.header("location") == "https://registry.aws.test/v2/x?y=1")
        let listener = try TestSidecar().connect(mode: .forwardAuth).request("/anything", headers: headers)
        #expect(listener.status == 302 && listener.header("location") == "https://registry.aws.test/v2/x?y=1")
        let missing = try TestSidecar().connect().request("/forward-auth", headers: [awsClient])
        #expect(missing.status == 200, "without X-Forwarded-Uri the request is allowed")
    }

    @Test func authRequestAnswers401WithTheTargetAndStatus() throws {
        let headers = ["X-Original-URI: /binaries/kubectl", "X-Original-Method: GET", gcpClient]
        let redirect = try TestSidecar().connect().request("/auth-request", headers: headers)
        #expect(redirect.status == 401)
        #expect(redirect.header("location") == "https://artifacts.gcp.test/mirror/binaries/kubectl")
        #expect(redirect.header(RequestTranslator.statusHeader) == "307")
        let listener = try TestSidecar().connect(mode: .authRequest).request("/anything", headers: headers)
        #expect(listener.status == 401 && listener.header(RequestTranslator.statusHeader) == "307")
        let pass = try TestSidecar().connect().request("/auth-request", headers: ["X-Original-URI: /v2/a"])
        #expect(pass.status == 200 && pass.header("location") == nil)
    }

    @Test func standaloneListenerDecidesEveryPath() throws {
        let connection = try TestSidecar().connect(mode: .standalone)
        let redirect = try connection.request("/binaries/x", headers: [gcpClient])
        #expect(redirect.status == 307 && redirect.header("location") == "https://artifacts.gcp.test/mirror/binaries/x")
        let apiRoot = try connection.request("/v2/")
        #expect(apiRoot.status == 200 && apiRoot.header("Docker-Distribution-Api-Version") == "registry/2.0")
        #expect(try connection.request("/healthz").status == 404, "no operations endpoints: /healthz is decided and passes")
    }
}

@Suite struct ConnectionTests {
    @Test func keepAliveConnectionAnswersRequestAfterRequest() throws {
        let connection = try TestSidecar().connect()
        for _ in 0..<3 {
            let redirect = try connection.request("/ext_authz/v2/a", headers: [awsClient])
            #expect(redirect.status == 302 && redirect.header("connection") == nil)
            #expect(connection.isOpen)
        }
        let last = try connection.request("/ext_authz/v2/a", headers: [awsClient, "Connection: close"])
        #expect(last.status == 302 && last.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let connection = try TestSidecar().connect()
        try connection.send("GET /ext_authz/v2/a HTTP/1.1\r\nHost: t\r\n\(awsClient)\r\n\r\n"
                            + "HEAD /ext_authz/binaries/b HTTP/1.1\r\nHost: t\r\n\(gcpClient)\r\nConnection: close\r\n\r\n")
        #expect(try connection.received()
                == "HTTP/1.1 302 Found\r\nLocation: https://registry.aws.test/v2/a\r\ncontent-length: 0\r\n\r\n"
                + "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://artifacts.gcp.test/mirror/binaries/b\r\n"
                + "connection: close\r\ncontent-length: 0\r\n\r\n")
        #expect(!connection.isOpen)
    }

    @Test func requestsPipelinedAfterACloseAreNotAnswered() throws {
        let connection = try TestSidecar().connect()
        try connection.send("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        let responses = try #require(Response.parse(try connection.received()))
        #expect(responses.count == 1 && responses[0].header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func http10ClosesUnlessKeepAliveIsAsked() throws {
        let old = try TestSidecar().connect()
        let closed = try old.exchange("GET /ext_authz/v2/a HTTP/1.0\r\n\(awsClient)\r\n\r\n")
        #expect(closed.status == 302 && closed.header("connection") == "close")
        #expect(!old.isOpen)

        let kept = try TestSidecar().connect()
        let alive = try kept.exchange("GET /ext_authz/v2/a HTTP/1.0\r\nConnection: keep-alive\r\n\(awsClient)\r\n\r\n")
        #expect(alive.status == 302 && alive.header("connection") == "keep-alive")
        #expect(kept.isOpen)
    }

    @Test func headAnswersHaveALengthButNoBody() throws {
        let connection = try TestSidecar().connect()
        try connection.send("HEAD /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
        let raw = try connection.received()
        #expect(raw.hasSuffix("\r\n\r\n"), "nothing after the head")
        let head = try #require(Response.parse(raw, bodiless: true)?.first)
        #expect(head.status == 200)
        #expect((Int(head.header("content-length") ?? "") ?? 0) > 0, "the length of the body a GET would get")
        #expect(connection.isOpen)
    }

    @Test func malformedRequestGets400AndTheConnectionCloses() throws {
        let connection = try TestSidecar().connect()
        let garbage = try connection.exchange("NOT AN HTTP REQUEST\r\n\r\n")
        #expect(garbage.status == 400 && garbage.header("connection") == "close" && garbage.body.isEmpty)
        #expect(!connection.isOpen)
    }

    @Test func oversizedRequestLineIsRefusedBeforeItEnds() throws {
        let sidecar = TestSidecar()
        let connection = try sidecar.connect()
        var line = Substring("GET /ext_authz/v2/" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\n\r\n")
        var sent = 0
        while connection.isOpen && !line.isEmpty {
            try connection.send(String(line.prefix(1000)))
            sent += min(1000, line.count)
            line = line.dropFirst(1000)
        }
        #expect(sent <= 2 * sidecar.context.configuration.maximumHeaderBytes, "not buffered without bound")
        let huge = try connection.response()
        #expect(huge.status == 400 && huge.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func oversizedHeaderIsRefused() throws {
        let connection = try TestSidecar { $0.maximumHeaderBytes = 1024 }.connect()
        let huge = try connection.exchange("GET /healthz HTTP/1.1\r\nX-Big: " + String(repeating: "b", count: 1500) + "\r\n\r\n")
        #expect(huge.status == 400 && huge.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func oversizedBodyIsAnsweredAndTheConnectionCloses() throws {
        let connection = try TestSidecar { $0.maximumBodyBytes = 16 }.connect()
        try connection.send("GET /ext_authz/v2/a HTTP/1.1\r\nHost: t\r\n\(awsClient)\r\nContent-Length: 100\r\n\r\n"
                            + String(repeating: "x", count: 17))
        let answer = try connection.response()  // before the rest of the body: the limit ends the read
        #expect(answer.status == 302 && answer.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func bodyWithinTheLimitIsDiscarded() throws {
        let connection = try TestSidecar { $0.maximumBodyBytes = 16 }.connect()
        let answer = try connection.exchange("GET /ext_authz/v2/a HTTP/1.1\r\nHost: t\r\n\(awsClient)\r\nContent-Length: 16\r\n\r\n"
                                             + String(repeating: "x", count: 16))
        #expect(answer.status == 302 && answer.header("connection") == nil)
        #expect(connection.isOpen)
    }

    @Test func quiescingClosesIdleConnectionsNowAndBusyOnesAfterTheirAnswer() throws {
        let sidecar = TestSidecar()
        let idle = try sidecar.connect()
        idle.channel.pipeline.syncOperations.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!idle.isOpen)

        let busy = try sidecar.connect()
        try busy.send("GET /ext_authz/v2/a HTTP/1.1\r\nHost: t\r\n\(awsClient)\r\nContent-Length: 2\r\n\r\nx")
        busy.channel.pipeline.syncOperations.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try busy.received().isEmpty && busy.isOpen, "the request in flight is not cut off")
        try busy.send("y")
        let answer = try busy.response()
        #expect(answer.status == 302 && answer.header("connection") == "close")
        #expect(!busy.isOpen)
    }
}

@Suite struct TimeoutTests {
    /// A check whose head promises a body that does not come.
    private static func stalledCheck(_ path: String = "/ext_authz/v2/a", budget: Int? = nil) -> String {
        "GET \(path) HTTP/1.1\r\nHost: t\r\n\(awsClient)\r\n" + (budget.map { "x-envoy-expected-rq-timeout-ms: \($0)\r\n" } ?? "")
            + "Content-Length: 10\r\n\r\n"
    }

    @Test func stalledCheckIsAnsweredAtTheEnvoyDeadline() throws {
        let sidecar = TestSidecar()
        let connection = try sidecar.connect()
        try connection.send(Self.stalledCheck(budget: 300))
        connection.advance(by: .milliseconds(299))
        #expect(try connection.received().isEmpty && connection.isOpen)
        connection.advance(by: .milliseconds(1))
        let answer = try connection.response()
        #expect(answer.status == 302 && answer.header("location") == "https://registry.aws.test/v2/a")
        #expect(answer.header("connection") == "close")
        #expect(!connection.isOpen)
        let metrics = String(decoding: sidecar.metrics.exposition(store: sidecar.store, ready: true, now: 0), as: UTF8.self)
        #expect(metrics.contains("redirector_request_timeouts_total 1\n"))
    }

    @Test func envoyBudgetIsCappedByTheRequestTimeout() throws {
        let connection = try TestSidecar { $0.requestTimeout = .seconds(1) }.connect()
        try connection.send(Self.stalledCheck(budget: 10_000))
        connection.advance(by: .milliseconds(999))
        #expect(try connection.received().isEmpty)
        connection.advance(by: .milliseconds(1))
        #expect(try connection.response().status == 302)
        #expect(!connection.isOpen)
    }

    @Test func stalledRequestWithoutBudgetGetsTheRequestTimeout() throws {
        let connection = try TestSidecar().connect()
        try connection.send(Self.stalledCheck())
        connection.advance(by: .milliseconds(4_999))
        #expect(try connection.received().isEmpty)
        connection.advance(by: .milliseconds(1))
        #expect(try connection.response().header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func envoyBudgetAppliesToExtAuthzChecksOnly() throws {
        let connection = try TestSidecar().connect(mode: .standalone)
        try connection.send(Self.stalledCheck("/v2/a", budget: 300))
        connection.advance(by: .milliseconds(300))
        #expect(try connection.received().isEmpty, "a standalone request ignores Envoy's header")
        connection.advance(by: .milliseconds(4_700))
        #expect(try connection.response().status == 302)
    }

    // NIO's IdleStateHandler measures idleness with the wall clock (NIODeadline.now()), not its event loop's,
    // so the embedded clock cannot bring an idle event: the tests check that the handler gets the configured
    // timeout and deliver its event themselves.

    @Test func idleTimeoutIsTheConfiguredReadTimeout() throws {
        let connection = try TestSidecar { $0.idleTimeout = .seconds(7) }.connect()
        let idle = try connection.channel.pipeline.syncOperations.handler(type: IdleStateHandler.self)
        #expect(idle.readTimeout == .seconds(7) && idle.writeTimeout == nil && idle.allTimeout == nil)
    }

    @Test func idleEventClosesAConnectionBetweenRequests() throws {
        let fresh = try TestSidecar().connect()
        fresh.channel.pipeline.syncOperations.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!fresh.isOpen)

        let connection = try TestSidecar().connect()
        #expect(try connection.request("/healthz").status == 200)
        connection.channel.pipeline.syncOperations.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!connection.isOpen)
    }

    @Test func idleEventSparesARequestInFlight() throws {
        let connection = try TestSidecar().connect()
        try connection.send(Self.stalledCheck())
        connection.channel.pipeline.syncOperations.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(connection.isOpen, "waiting for a body is not idle")
        connection.advance(by: .seconds(5))
        #expect(try connection.response().status == 302, "answered at the request timeout")
        #expect(!connection.isOpen)
    }
}
