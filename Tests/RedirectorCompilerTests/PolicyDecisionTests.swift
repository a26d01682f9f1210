import RedirectorCore
import Testing

/// Decisions of small configs compiled from YAML: targets, regions, fallbacks, client and method
/// filters, rewrites, queries, unsafe targets and the Location buffer.
@Suite struct PolicyDecisionTests {
    /// Three providers: alpha (regions), beta (inactive), gamma (artifacts only).
    static let sources: [String: String] = [
        "alpha.csv": "prefix,provider,region\n198.51.100.0/25,,eu-1\n198.51.100.128/25,,us-1\n203.0.113.0/24\n2001:db8:a::/48,,eu-1\n",
        "beta.csv": "192.0.2.0/24\n",
        "gamma.csv": "100.64.0.0/10 # shared address space\n",
    ]

    static let providers = """
        providers:
          - name: alpha
            registry: registry.alpha.example
            artifacts: https://Artifacts.Alpha.example/base/
            regions:
              eu-1: { artifacts: "https://eu.alpha.example" }
              us-1: { registry: "http://us.alpha.example:8080/r" }
            sources: [{ format: csv, path: alpha.csv }]
          - name: beta
            active: false
            registry: registry.beta.example
            artifacts: artifacts.beta.example
            sources: [{ format: csv, path: beta.csv }]
          - name: gamma
            artifacts: gamma.example
            sources: [{ format: csv, path: gamma.csv }]

        """

    static func compile(_ body: String) throws -> Snapshot {
        try Fixture(sources).compile("version: 1\n" + providers + body)
    }

    @Test func targetsRegionsAndFixedProviders() throws {
        let snapshot = try PolicyDecisionTests.compile("""
            routes:
              - name: pinned
                path: /pinned/{rest...}
                redirect: { to: artifacts, provider: alpha }
              - name: pinned-inactive
                path: /beta/{rest...}
                redirect: { to: registry, provider: beta }
              - name: registry
                path: /v2/{rest...}
                redirect: { to: registry }
              - name: artifacts
                path: /dl/{file}
                redirect: { to: artifacts, status: 308, rewrite: "/files/{file}", keepQuery: false }
            defaults:
              unmatched: pass
            """)
        // Region targets, with the provider's target for a class the region leaves empty.
        let eu = snapshot.ask("198.51.100.1", "/v2/x")
        #expect(eu.provider == "alpha" && eu.region == "eu-1" && eu.status == 302)
        #expect(eu.location == "https://registry.alpha.example/v2/x")  // bare host → https://
        let euDownload = snapshot.ask("198.51.100.1", "/dl/k.tgz?x=1")
        #expect(euDownload.status == 308 && euDownload.location == "https://eu.alpha.example/files/k.tgz")
        #expect(snapshot.ask("198.51.100.200", "/v2/x").location == "http://us.alpha.example:8080/r/v2/x")
        #expect(snapshot.ask("198.51.100.200", "/dl/a").location == "https://Artifacts.Alpha.example/base/files/a")  // as written
        #expect(snapshot.ask("203.0.113.9", "/dl/a").location == "https://Artifacts.Alpha.example/base/files/a")  // as written
        #expect(snapshot.ask("2001:db8:a::1", "/dl/a").location == "https://eu.alpha.example/files/a")
        // A fixed provider: its region targets only for its own clients.
        #expect(snapshot.ask("198.51.100.1", "/pinned/x").location == "https://eu.alpha.example/pinned/x")
        for client in ["100.64.0.1", "192.0.2.1", "10.0.0.1", "2001:db8:b::1"] {
            #expect(snapshot.ask(client, "/pinned/x").location == "https://Artifacts.Alpha.example/base/pinned/x", "\(client)")
        }
        // A fixed provider that is inactive has no target for anyone: fallback pass.
        for client in ["192.0.2.1", "198.51.100.1", "10.0.0.1"] {
            let answer = snapshot.ask(client, "/beta/x")
            #expect(answer.action == "pass" && answer.route == "pinned-inactive", "\(client)")
        }
        // Inactive provider: matched and explained, never redirected; fallback is pass.
        let beta = snapshot.ask("192.0.2.1", "/v2/x")
        #expect(beta.provider == "beta" && beta.action == "pass" && beta.route == "registry" && beta.location == nil)
        // A provider without a target for the class: fallback pass.
        #expect(snapshot.ask("100.64.0.1", "/v2/x").action == "pass")
        #expect(snapshot.ask("100.64.0.1", "/dl/a").location == "https://gamma.example/files/a")
        #expect(snapshot.ask("10.0.0.1", "/v2/x").action == "pass")
    }

    /// `/v2/…` to the client's registry host, `/dl/…` to its artifacts host, nothing rewritten.
    static let classRoutes = """
        routes:
          - name: registry
            path: /v2/{rest...}
            redirect: { to: registry }
          - name: artifacts
            path: /dl/{rest...}
            redirect: { to: artifacts }

        """

    @Test func fallbackRedirect() throws {
        let snapshot = try PolicyDecisionTests.compile(PolicyDecisionTests.classRoutes + """
            defaults:
              status: 307
              unmatched: redirect
              registry: fallback.example
            """)
        for client in ["10.0.0.1", "192.0.2.1", "100.64.0.1", "garbage"] {  // none, inactive, no registry host, invalid
            let answer = snapshot.ask(client, "/v2/x?y")
            #expect(answer.action == "redirect" && answer.status == 307 && answer.location == "https://fallback.example/v2/x?y", "\(client)")
            #expect(answer.target == "https://fallback.example")
        }
        #expect(snapshot.ask("198.51.100.1", "/v2/x").location == "https://registry.alpha.example/v2/x")
        // The fallback has no artifacts host: pass.
        #expect(snapshot.ask("10.0.0.1", "/dl/x").action == "pass")
        #expect(snapshot.ask("100.64.0.1", "/dl/x").location == "https://gamma.example/dl/x")
    }

    @Test func clientFilters() throws {
        let snapshot = try PolicyDecisionTests.compile("""
            routes:
              - name: listed
                path: /p/{rest...}
                providers: [alpha, beta]
                redirect: { to: https://mirror.example }
              - name: not-alpha
                path: /q/{rest...}
                exceptProviders: [alpha]
                respond: { status: 403 }
              - name: matched
                path: /m/{rest...}
                clients: matched
                respond: { status: 204 }
              - name: unmatched
                path: /m/{rest...}
                clients: unmatched
                respond: { status: 404 }
            """)
        #expect(snapshot.ask("198.51.100.1", "/p/x").location == "https://mirror.example/p/x")
        #expect(snapshot.ask("100.64.0.1", "/p/x").route == "")
        #expect(snapshot.ask("10.0.0.1", "/p/x").action == "pass")
        #expect(snapshot.ask("198.51.100.1", "/q/x").action == "pass")
        #expect(snapshot.ask("100.64.0.1", "/q/x").status == 403)
        #expect(snapshot.ask("10.0.0.1", "/q/x").status == 403)
        #expect(snapshot.ask("198.51.100.1", "/m/x").status == 204)
        #expect(snapshot.ask("100.64.0.1", "/m/x").status == 204)
        #expect(snapshot.ask("10.0.0.1", "/m/x").status == 404)
        #expect(snapshot.ask("bad", "/m/x").status == 404)
        // An inactive provider's clients are treated as clients of no provider by every filter:
        // listing it never gets them a redirect, and excluding it does not exclude them.
        let inactive = snapshot.ask("192.0.2.1", "/p/x")
        #expect(inactive.action == "pass" && inactive.location == nil && inactive.provider == "beta")
        #expect(snapshot.ask("192.0.2.1", "/q/x").status == 403)
        #expect(snapshot.ask("192.0.2.1", "/m/x").status == 404)
    }

    @Test func methodFilters() throws {
        let snapshot = try Fixture().compile("""
            routes:
              - name: post-only
                path: /upload
                methods: [POST]
                respond: { status: 202 }
              - name: any-method
                path: /any
                methods: ["*"]
                respond: { status: 200 }
              - name: not-get
                path: /{x...}
                exceptMethods: [GET, HEAD]
                respond: { status: 405 }
              - name: default-methods
                path: /{x...}
                redirect: { to: "https://h.example" }
            """)
        #expect(snapshot.ask("10.0.0.1", "/upload", method: "POST").status == 202)
        #expect(snapshot.ask("10.0.0.1", "/upload", method: "GET").status == 302)
        #expect(snapshot.ask("10.0.0.1", "/upload", method: "PUT").status == 405)
        for method in ["GET", "DELETE", "BREW", ""] {
            #expect(snapshot.ask("10.0.0.1", "/any", method: method).status == 200, "\(method)")
        }
        #expect(snapshot.ask("10.0.0.1", "/x", method: "HEAD").location == "https://h.example/x")
        #expect(snapshot.ask("10.0.0.1", "/x", method: "Get").status == 405)  // exact bytes
        #expect(snapshot.ask("10.0.0.1", "/x", method: "GET ").status == 405)
    }

    @Test func respondHeadersAreSortedByName() throws {
        let snapshot = try Fixture().compile("""
            routes:
              - name: teapot
                path: /tea
                respond: { status: 418, headers: { X-B: "two words", X-A: "1", Cache-Control: "no-store" } }
            """)
        let answer = snapshot.ask("10.0.0.1", "/tea")
        #expect(answer.action == "respond" && answer.status == 418)
        #expect(answer.headers.map { "\($0.name): \($0.value)" } == ["Cache-Control: no-store", "X-A: 1", "X-B: two words"])
    }

    static let rewriteConfig = """
        routes:
          - name: rewrite
            path: /r/{a}/{b...}
            redirect: { to: "https://h.example/base", rewrite: "/x/{b}/{a}" }
          - name: whole
            path: /w/{rest...}
            redirect: { to: "https://h.example", rewrite: "/mirror{path}" }
          - name: drop
            path: /d/{rest...}
            redirect: { to: "https://h.example", keepQuery: false, status: 301 }
          - name: landing
            path: /e
            redirect: { to: "https://h.example/landing", rewrite: "" }
          - name: same
            path: /s/{rest...}
            redirect: { to: "https://h.example/pre", rewrite: "{path}" }
          - name: plain
            path: /{rest...}
            redirect: { to: "https://h.example", status: 303 }
        """

    @Test func rewritesAndQueries() throws {
        let snapshot = try Fixture().compile(PolicyDecisionTests.rewriteConfig)
        #expect(snapshot.ask("10.0.0.1", "/r/one/two/three?q").location == "https://h.example/base/x/two/three/one?q")
        #expect(snapshot.ask("10.0.0.1", "/w/a?b").location == "https://h.example/mirror/w/a?b")
        let dropped = snapshot.ask("10.0.0.1", "/d/a?b=1")
        #expect(dropped.location == "https://h.example/d/a" && dropped.status == 301)
        #expect(snapshot.ask("10.0.0.1", "/e?z=1").location == "https://h.example/landing?z=1")
        #expect(snapshot.ask("10.0.0.1", "/e").location == "https://h.example/landing")
        #expect(snapshot.ask("10.0.0.1", "/s/a?b").location == "https://h.example/pre/s/a?b")
        #expect(snapshot.ask("10.0.0.1", "/x").status == 303)
        // Queries (and paths) are copied byte for byte: no decoding, no re-encoding, no normalisation.
        for target in ["/p?a=%0D%0A&b=%C3%BC&c=a%20b&d=&&e=1;f=2#frag", "/p?", "/p??x", "/p?/../x", "/a/../b/./c//d",
                       "/%2e%2e/%2F?%00", "/ü/é?ä=ö", "/p?a=\"<script>\"", "//evil.example/x"] {
            #expect(snapshot.ask("10.0.0.1", target).location == "https://h.example" + target, "\(target)")
        }
    }

    @Test func rawBytesArePreserved() throws {
        let snapshot = try Fixture().compile(PolicyDecisionTests.rewriteConfig)
        // Invalid UTF-8 and high bytes pass through untouched.
        let target: [UInt8] = [0x2F, 0xFF, 0xFE, 0x80, 0x3F, 0xC3, 0x28, 0x3D, 0x7E]
        let (decision, buffer) = snapshot.decide(client: "10.0.0.1", targetBytes: target)
        #expect(decision.action == .redirect && decision.status == 303)
        let expected = Array("https://h.example".utf8) + target
        #expect(decision.locationLength == expected.count)
        #expect(Array(buffer[..<decision.locationLength]) == expected)
    }

    @Test func unsafeTargetsAreNeverRedirected() throws {
        let snapshot = try Fixture().compile(PolicyDecisionTests.rewriteConfig)
        var targets: [[UInt8]] = []
        // Control bytes, space and DEL anywhere in the path or the query.
        for byte in Array(UInt8(0)...UInt8(0x20)) + [0x7F] {
            targets.append(Array("/v2/x".utf8) + [byte])
            targets.append([0x2F, byte] + Array("abc".utf8))
            targets.append(Array("/x?a=".utf8) + [byte] + Array("Set-Cookie: a=b".utf8))
        }
        targets.append(Array("/x\r\nLocation: https://evil.example".utf8))
        // Not starting with '/': empty, relative, absolute-form, authority-form, asterisk, query only.
        for text in ["", "x", "v2/x", "https://evil.example/x", "evil.example:443", "*", "?x=1", "\\evil.example", " /x"] {
            targets.append(Array(text.utf8))
        }
        for target in targets {
            let (decision, buffer) = snapshot.decide(client: "10.0.0.1", targetBytes: target)
            #expect(decision.action == .pass && decision.locationLength == 0, "\(target)")
            #expect(buffer.allSatisfy { $0 == 0xAA }, "nothing is written for \(target)")
        }
    }

    @Test func tooSmallLocationBufferReportsTheLength() throws {
        let snapshot = try Fixture().compile(PolicyDecisionTests.rewriteConfig)
        let target = Array("/some/long/path?with=query".utf8)
        let expected = Array("https://h.example/some/long/path?with=query".utf8)
        for capacity in [0, 1, 10, expected.count - 1] {
            let (decision, buffer) = snapshot.decide(client: "10.0.0.1", targetBytes: target, capacity: capacity)
            #expect(decision.action == .redirect && decision.status == 303)
            #expect(decision.locationLength == expected.count)
            #expect(buffer.allSatisfy { $0 == 0xAA }, "nothing written into \(capacity) bytes")
        }
        let (decision, buffer) = snapshot.decide(client: "10.0.0.1", targetBytes: target, capacity: expected.count)
        #expect(decision.locationLength == expected.count && buffer == expected)
        // Rewrites and dropped queries count exactly what is written.
        let rewritten = snapshot.decide(client: "10.0.0.1", targetBytes: Array("/r/one/two?q".utf8), capacity: 8)
        #expect(rewritten.0.locationLength == "https://h.example/base/x/two/one?q".utf8.count)
        let explained = snapshot.ask("10.0.0.1", "/" + String(repeating: "a", count: 2000))
        #expect(explained.location?.utf8.count == "https://h.example/".utf8.count + 2000)
    }

    @Test func trustedProxiesAreCompiled() throws {
        let snapshot = try Fixture().compile("""
            trustedProxies: ["10.0.0.0/8", "::1/128", "::ffff:192.168.0.0/112", "172.16.1.1/12"]
            """)
        #expect(snapshot.policy.trustedProxies == [prefix("10.0.0.0/8"), prefix("::1/128"), prefix("192.168.0.0/16"), prefix("172.16.0.0/12")])
        let resolver = ClientAddressResolver(trustedProxies: snapshot.policy.trustedProxies)
        #expect(resolver.resolve(peer: IPAddress("192.168.3.4")!, forwardedFor: ["203.0.113.7"]) == IPAddress("203.0.113.7"))
        #expect(snapshot.policy.routes.isEmpty)
        #expect(snapshot.ask("10.0.0.1", "/v2/x").action == "pass")
    }

    /// A region table's first line is a header when its second column is a bare word (`url` is
    /// also a valid host name, so "is it a valid target" cannot tell), and data otherwise.
    @Test(arguments: [
        ("region,url\nus-east-1,https://us.example\n", ["us-east-1"]),
        ("aws_region,blob_base_url\nus-east-1,https://us.example\n", ["us-east-1"]),
        ("eu-1,eu.example\nus-east-1,https://us.example\n", ["eu-1", "us-east-1"]),
        ("eu-1,https://eu.example\n", ["eu-1"]),
        ("# regions\nregion,url\nus-east-1,https://us.example\n", ["us-east-1"]),
        ("dev,localhost:5000\n", ["dev"]),
    ])
    func regionTableHeaderIsNotData(table: String, regions: [String]) throws {
        let snapshot = try Fixture(["regions.csv": table]).compile(
            "providers: [{ name: alpha, regionTable: { path: regions.csv, class: artifacts } }]\n")
        let provider = try #require(snapshot.policy.providers.first)
        #expect(provider.regionTargets.map { snapshot.strings.string($0.region) }.sorted() == regions)
    }
}
