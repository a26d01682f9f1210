import RedirectorCompiler
import RedirectorCore
import Testing

/// `inspect --destinations`: every host a redirect can reach, and none it cannot.
@Suite struct DestinationsTests {
    static let config = """
        version: 1
        pools:
          eu:
            members:
              - { url: "https://eu-1.mirror.example/k8s" }
              - { url: "https://EU-2.mirror.example:8443" }
            fallback: spare
          spare:
            members: [{ url: "http://spare.example" }]
          unused:
            members: [{ url: "https://unused.example" }]
        providers:
          - name: alpha
            registry: https://alpha-registry.example
            artifacts: https://alpha-artifacts.example
            regions:
              eu-west-1: { registry: { pool: eu } }
            sources: [{ format: csv, path: alpha.csv }]
          - name: sleeping
            active: false
            registry: https://sleeping.example
            sources: [{ format: csv, path: sleeping.csv }]
        routes:
          - name: registry
            path: /v2/{rest...}
            redirect: { to: registry }
          - name: ping
            path: /ping
            respond: { status: 200 }
        defaults: { unmatched: redirect, registry: "https://fallback.example:444" }
        """

    @Test func listsWhatRedirectsReachAndNothingElse() throws {
        let snapshot = try Fixture([
            "alpha.csv": "prefix,provider,region\n198.51.100.0/24,,eu-west-1\n",
            "sleeping.csv": "prefix,provider,region\n203.0.113.0/24,,\n",
        ]).compile(DestinationsTests.config)
        let destinations = snapshot.destinations()
        // Registry routes reach alpha's registry pools (its own, eu-west-1's pool and that pool's
        // fallback) and the default for unmatched clients; not alpha's artifacts host, the
        // inactive provider's host, or the pool nothing names.
        #expect(destinations.map(\.origin) == [
            "http://spare.example", "https://alpha-registry.example", "https://eu-1.mirror.example",
            "https://eu-2.mirror.example:8443", "https://fallback.example:444",
        ])
        let eu1 = try #require(destinations.first { $0.host == "eu-1.mirror.example" })
        #expect(eu1.port == 443 && eu1.scheme == "https" && eu1.urls == ["https://eu-1.mirror.example/k8s"])
        let fallback = try #require(destinations.first { $0.host == "fallback.example" })
        #expect(fallback.port == 444)
    }

    @Test(arguments: [
        ("https://a.example", "https", "a.example", 443),
        ("http://a.example/x/y", "http", "a.example", 80),
        ("https://a.example:8443/p", "https", "a.example", 8443),
        ("http://[::1]/", "http", "[::1]", 80),
        ("https://[::1]:9000", "https", "[::1]", 9000),
    ])
    func originsOfMemberURLs(url: String, scheme: String, host: String, port: Int) throws {
        let destination = try #require(Destination(url: url))
        #expect(destination.scheme == scheme && destination.host == host && destination.port == port)
    }
}
