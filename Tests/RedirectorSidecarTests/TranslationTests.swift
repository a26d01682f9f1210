import Logging
import NIOHTTP1
import RedirectorCore
@testable import RedirectorSidecar
import Testing

private func headers(_ pairs: [(String, String)]) -> HTTPHeaders {
    HTTPHeaders(pairs)
}

private let loopback = IPAddress("127.0.0.1")
private let outsider = IPAddress("203.0.113.77")

/// Decides a request the way the server does and returns the answer.
private func answer(_ translator: RequestTranslator, _ snapshot: Snapshot, mode: ListenerMode = .auto, method: String = "GET",
                    uri: String, headers pairs: [(String, String)] = [], peer: IPAddress? = loopback,
                    extraTrusted: [String] = ["127.0.0.1/32"]) -> SidecarResponse? {
    let resolver = ClientAddressResolver(trustedProxies: snapshot.policy.trustedProxies + extraTrusted.compactMap { IPPrefix($0) })
    let route = translator.route(uri: uri, mode: mode)
    guard route.endpoint.decides else { return nil }
    guard let request = translator.checkRequest(endpoint: route.endpoint, method: method, target: route.target,
                                                headers: headers(pairs), peer: peer, resolver: resolver) else {
        return translator.invalidResponse(endpoint: route.endpoint)
    }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)  // small: exercises the retry
    defer { buffer.deallocate() }
    let (decision, location) = translator.decide(request, snapshot: snapshot, location: buffer)
    return translator.response(to: decision, location: location, endpoint: route.endpoint, target: request.target, snapshot: snapshot)
}

@Suite struct RoutingTests {
    let translator = RequestTranslator(configuration: SidecarConfiguration(snapshotPath: "/dev/null"))

    @Test func extAuthzPrefixIsStrippedAtASegmentBoundary() {
        #expect(translator.route(uri: "/ext_authz/v2/a?x=1", mode: .auto).endpoint == .extAuthz)
        #expect(translator.route(uri: "/ext_authz/v2/a?x=1", mode: .auto).target == "/v2/a?x=1")
        #expect(translator.route(uri: "/ext_authz?x", mode: .auto).target == "?x")
        #expect(translator.route(uri: "/ext_authz", mode: .auto).target == "")
        #expect(translator.route(uri: "/ext_authzfoo/v2", mode: .auto).endpoint == .notFound)
    }

    @Test func operationalEndpointsIgnoreTheQuery() {
        #expect(translator.route(uri: "/healthz", mode: .auto).endpoint == .healthz)
        #expect(translator.route(uri: "/readyz?verbose", mode: .auto).endpoint == .readyz)
        #expect(translator.route(uri: "/metrics", mode: .auto).endpoint == .metrics)
        #expect(translator.route(uri: "/forward-auth?from=caddy", mode: .auto).endpoint == .forwardAuth)
        #expect(translator.route(uri: "/auth-request", mode: .auto).endpoint == .authRequest)
        #expect(translator.route(uri: "/explain", mode: .auto).endpoint == .notFound, "explain is off by default")
        #expect(translator.route(uri: "/v2/x", mode: .auto).endpoint == .notFound)
    }

    @Test func standaloneFallbackAndDedicatedModes() {
        var configuration = SidecarConfiguration(snapshotPath: "/dev/null")
        configuration.standaloneFallback = true
        let fallback = RequestTranslator(configuration: configuration)
        #expect(fallback.route(uri: "/v2/x?y", mode: .auto).endpoint == .standalone)
        #expect(fallback.route(uri: "/v2/x?y", mode: .auto).target == "/v2/x?y")
        #expect(fallback.route(uri: "/healthz", mode: .auto).endpoint == .healthz)
        #expect(translator.route(uri: "/healthz", mode: .standalone).endpoint == .standalone)
        #expect(translator.route(uri: "/v2/x", mode: .extAuthz).target == "/v2/x")
        #expect(translator.route(uri: "/ext_authz/v2/x", mode: .extAuthz).target == "/v2/x")
        #expect(translator.route(uri: "/anything", mode: .forwardAuth).endpoint == .forwardAuth)
        #expect(translator.route(uri: "/anything", mode: .authRequest).endpoint == .authRequest)
    }
}

@Suite struct ClientAddressTests {
    let snapshot: Snapshot
    let translator = RequestTranslator(configuration: SidecarConfiguration(snapshotPath: "/dev/null"))

    init() throws {
        snapshot = try TestSnapshot.make()
    }

    func client(_ pairs: [(String, String)], peer: IPAddress?, trusted: [String] = ["127.0.0.1/32"],
                translator: RequestTranslator? = nil) -> IPAddress? {
        let resolver = ClientAddressResolver(trustedProxies: trusted.compactMap { IPPrefix($0) })
        return (translator ?? self.translator).clientAddress(headers: headers(pairs), peer: peer, resolver: resolver)
    }

    @Test func untrustedPeerIsTheClient() {
        #expect(client([("X-Forwarded-For", "192.0.2.10")], peer: outsider) == outsider)
        #expect(client([("X-Real-IP", "192.0.2.10")], peer: outsider) == outsider)
        #expect(client([("x-envoy-external-address", "192.0.2.10")], peer: outsider) == outsider)
    }

    @Test func trustedPeerYieldsTheRightmostUntrustedEntry() {
        #expect(client([("X-Forwarded-For", "198.51.100.5, 192.0.2.10")], peer: loopback) == IPAddress("192.0.2.10"))
        #expect(client([("X-Forwarded-For", "192.0.2.10, 127.0.0.1")], peer: loopback) == IPAddress("192.0.2.10"))
        #expect(client([("X-Forwarded-For", "192.0.2.10"), ("X-Forwarded-For", "198.51.100.5")], peer: loopback)
                == IPAddress("198.51.100.5"))
        #expect(client([], peer: loopback) == loopback)
        #expect(client([("X-Forwarded-For", "garbage")], peer: loopback) == loopback)
    }

    @Test func envoyExternalAddressAndRealIPAreFallbacks() {
        #expect(client([("x-envoy-external-address", "192.0.2.10")], peer: loopback) == IPAddress("192.0.2.10"))
        #expect(client([("X-Real-IP", "198.51.100.5")], peer: loopback) == IPAddress("198.51.100.5"))
        #expect(client([("X-Forwarded-For", "192.0.2.10"), ("x-envoy-external-address", "198.51.100.5")], peer: loopback)
                == IPAddress("192.0.2.10"))
    }

    @Test func configuredClientHeaderWinsFromTrustedPeersOnly() {
        var configuration = SidecarConfiguration(snapshotPath: "/dev/null")
        configuration.clientHeader = "X-Redirector-Client"
        let translator = RequestTranslator(configuration: configuration)
        let pairs = [("x-redirector-client", " 192.0.2.10 "), ("X-Forwarded-For", "198.51.100.5")]
        #expect(client(pairs, peer: loopback, translator: translator) == IPAddress("192.0.2.10"))
        #expect(client(pairs, peer: outsider, translator: translator) == outsider)
        #expect(client([("x-redirector-client", "192.0.2.010")], peer: loopback, translator: translator) == nil,
                "a malformed address never matches")
    }

    @Test func missingPeerAddressMatchesNothing() {
        #expect(client([("X-Forwarded-For", "192.0.2.10")], peer: nil) == nil)
    }
}

@Suite struct ResponseTests {
    let snapshot: Snapshot
    let translator = RequestTranslator(configuration: SidecarConfiguration(snapshotPath: "/dev/null"))

    init() throws {
        snapshot = try TestSnapshot.make()
    }

    @Test func extAuthzRedirectAllowAndRespond() throws {
        let redirect = try #require(answer(translator, snapshot, uri: "/ext_authz/v2/a/manifests/b?x=%2F",
                                           headers: [("X-Forwarded-For", "192.0.2.10")]))
        #expect(redirect.status == 302)
        #expect(redirect.header("Location") == "https://registry.aws.test/v2/a/manifests/b?x=%2F")
        #expect(redirect.body.isEmpty)
        #expect(redirect.outcome == .redirect)

        let region = try #require(answer(translator, snapshot, uri: "/ext_authz/v2/a", headers: [("X-Forwarded-For", "192.0.2.200")]))
        #expect(region.header("Location") == "https://eu-west-1.registry.aws.test/v2/a")

        let artifacts = try #require(answer(translator, snapshot, uri: "/ext_authz/binaries/k", headers: [("X-Forwarded-For", "198.51.100.9")]))
        #expect(artifacts.status == 307)
        #expect(artifacts.header("Location") == "https://artifacts.gcp.test/mirror/binaries/k")

        let pass = try #require(answer(translator, snapshot, uri: "/ext_authz/v2/a", headers: [("X-Forwarded-For", "10.0.0.1")]))
        #expect(pass.status == 200 && pass.headers.isEmpty && pass.body.isEmpty && pass.outcome == .pass)

        let notAllowed = try #require(answer(translator, snapshot, method: "POST", uri: "/ext_authz/v2/a"))
        #expect(notAllowed.status == 405)

        let apiRoot = try #require(answer(translator, snapshot, uri: "/ext_authz/v2/"))
        #expect(apiRoot.status == 200, "a 2xx route answer allows the request: the upstream answers")
        #expect(apiRoot.header("Docker-Distribution-Api-Version") == "registry/2.0")
        #expect(apiRoot.outcome == .respond)
    }

    @Test func spoofedForwardedForFromAnUntrustedPeerIsIgnored() throws {
        let response = try #require(answer(translator, snapshot, uri: "/ext_authz/v2/a", headers: [("X-Forwarded-For", "192.0.2.10")],
                                           peer: IPAddress("127.0.0.9")))
        #expect(response.status == 200)
        let direct = try #require(answer(translator, snapshot, uri: "/ext_authz/v2/a", peer: IPAddress("127.0.0.2")))
        #expect(direct.status == 302, "127.0.0.2 itself belongs to aws in the test snapshot")
    }

    @Test func forwardAuthReadsTheOriginalRequestFromHeaders() throws {
        let pairs = [("X-Forwarded-Method", "HEAD"), ("X-Forwarded-Uri", "/v2/x/blobs/sha256:00?y=1"),
                     ("X-Forwarded-For", "2001:db8:a::5"), ("X-Forwarded-Host", "mirror.test")]
        let response = try #require(answer(translator, snapshot, method: "GET", uri: "/forward-auth?caddy=copies-this", headers: pairs))
        #expect(response.status == 302)
        #expect(response.header("Location") == "https://registry.aws.test/v2/x/blobs/sha256:00?y=1")

        let post = try #require(answer(translator, snapshot, uri: "/forward-auth",
                                       headers: [("X-Forwarded-Method", "DELETE"), ("X-Forwarded-Uri", "/v2/x")]))
        #expect(post.status == 405)

        let missing = try #require(answer(translator, snapshot, uri: "/forward-auth", headers: [("X-Forwarded-For", "192.0.2.10")]))
        #expect(missing.status == 200 && missing.outcome == .invalid, "without X-Forwarded-Uri the request is allowed")
    }

    @Test func authRequestAnswersWhatNginxCanRelay() throws {
        let pairs = [("X-Original-URI", "/binaries/kubectl"), ("X-Original-Method", "GET"), ("X-Forwarded-For", "198.51.100.9")]
        let redirect = try #require(answer(translator, snapshot, uri: "/auth-request", headers: pairs))
        #expect(redirect.status == 401)
        #expect(redirect.header("Location") == "https://artifacts.gcp.test/mirror/binaries/kubectl")
        #expect(redirect.header(RequestTranslator.statusHeader) == "307")

        let catalog = try #require(answer(translator, snapshot, uri: "/auth-request", headers: [("X-Original-URI", "/v2/_catalog")]))
        #expect(catalog.status == 401)
        #expect(catalog.header(RequestTranslator.statusHeader) == "404")
        #expect(catalog.header("Location") == nil)

        let pass = try #require(answer(translator, snapshot, uri: "/auth-request", headers: [("X-Original-URI", "/v2/a")]))
        #expect(pass.status == 200)
    }

    @Test func standaloneServesRedirectsAndThePassAnswer() throws {
        let redirect = try #require(answer(translator, snapshot, mode: .standalone, uri: "/v2/a", headers: [("X-Forwarded-For", "192.0.2.10")]))
        #expect(redirect.status == 302 && redirect.header("Location") == "https://registry.aws.test/v2/a")
        let pass = try #require(answer(translator, snapshot, mode: .standalone, uri: "/v2/a"))
        #expect(pass.status == 404)
        let apiRoot = try #require(answer(translator, snapshot, mode: .standalone, uri: "/v2/"))
        #expect(apiRoot.status == 200 && apiRoot.header("Docker-Distribution-Api-Version") == "registry/2.0")

        var configuration = SidecarConfiguration(snapshotPath: "/dev/null")
        configuration.standalonePass = .redirect(status: 302, base: "https://origin.test")
        let origin = RequestTranslator(configuration: configuration)
        let toOrigin = try #require(answer(origin, snapshot, mode: .standalone, uri: "/v2/a?q"))
        #expect(toOrigin.status == 302 && toOrigin.header("Location") == "https://origin.test/v2/a?q")
        let unsafe = try #require(answer(origin, snapshot, mode: .standalone, uri: "//evil.test/x"))
        #expect(unsafe.status == 404)
    }

    @Test func unsafeTargetsAreNeverRedirected() throws {
        let response = try #require(answer(translator, snapshot, uri: "/forward-auth",
                                           headers: [("X-Forwarded-Uri", "/v2/a\r\nSet-Cookie: x"), ("X-Forwarded-For", "192.0.2.10")]))
        #expect(response.status == 200)
    }

    @Test func explanationIsPrintable() throws {
        let request = CheckRequest(method: "GET", target: "/v2/a\u{1}", client: IPAddress("192.0.2.10"))
        let text = translator.explanation(request, snapshot: snapshot)
        #expect(text.contains("provider=aws"))
        #expect(text.contains("client=192.0.2.10"))
        #expect(text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f })
    }
}

@Suite struct ConfigurationTests {
    @Test func listenerParsing() throws {
        #expect(try ListenerConfiguration(parsing: "127.0.0.1:9000") == ListenerConfiguration(mode: .auto, host: "127.0.0.1", port: 9000))
        #expect(try ListenerConfiguration(parsing: "standalone=0.0.0.0:8080") == ListenerConfiguration(mode: .standalone, host: "0.0.0.0", port: 8080))
        #expect(try ListenerConfiguration(parsing: "ext-authz=[::1]:0") == ListenerConfiguration(mode: .extAuthz, host: "::1", port: 0))
        #expect(try ListenerConfiguration(parsing: ":9000").host == "0.0.0.0")
        #expect(throws: ConfigurationError.self) { try ListenerConfiguration(parsing: "nope=1.2.3.4:1") }
        #expect(throws: ConfigurationError.self) { try ListenerConfiguration(parsing: "1.2.3.4:99999") }
        #expect(throws: ConfigurationError.self) { try ListenerConfiguration(parsing: "1.2.3.4") }
    }

    @Test func durationsPrefixesAndFlags() throws {
        #expect(try SidecarRunner.parseDuration("5") == .seconds(5))
        #expect(try SidecarRunner.parseDuration("250ms") == .milliseconds(250))
        #expect(try SidecarRunner.parseDuration("0.5s") == .milliseconds(500))
        #expect(try SidecarRunner.parseDuration("2m") == .seconds(120))
        #expect(throws: ConfigurationError.self) { try SidecarRunner.parseDuration("-1") }
        #expect(throws: ConfigurationError.self) { try SidecarRunner.parseDuration("soon") }
        let prefixes = try SidecarRunner.parsePrefixes(["10.0.0.0/8, 127.0.0.1", "::1"])
        #expect(prefixes == [IPPrefix("10.0.0.0/8")!, IPPrefix("127.0.0.1/32")!, IPPrefix("::1/128")!])
        #expect(throws: ConfigurationError.self) { try SidecarRunner.parsePrefixes(["10.0.0.0/33"]) }
        #expect(SidecarRunner.isTrue("YES") && !SidecarRunner.isTrue("0") && !SidecarRunner.isTrue(nil))
    }

    @Test func validation() {
        var configuration = SidecarConfiguration(snapshotPath: "x")
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.extAuthzPathPrefix = "/ext_authz/"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.extAuthzPathPrefix = ""
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.listeners = [ListenerConfiguration(mode: .extAuthz, host: "127.0.0.1", port: 0)]
        #expect(throws: Never.self) { try configuration.validate() }
        configuration.standalonePass = .redirect(status: 302, base: "ftp://x")
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.standalonePass = .status(404)
        configuration.clientHeader = "bad header"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }

    @Test func queryStringDecoding() {
        let parameters = QueryString.parse("/explain?client=192.0.2.1&target=%2Fv2%2Fa%3Fb%3D1&method=HEAD&x=%zz+y")
        #expect(parameters["client"] == "192.0.2.1")
        #expect(parameters["target"] == "/v2/a?b=1")
        #expect(parameters["method"] == "HEAD")
        #expect(parameters["x"] == "%zz y")
    }

    @Test func jsonStrings() {
        #expect(JSON.string("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
    }
}
