import RedirectorCompiler
import RedirectorCore
import Testing

/// Regression tests for what the config and importer fuzzers found (Fuzz/Targets/importers.swift),
/// and for hostile data in sources: names and regions reach NGINX variables, debug headers and
/// metrics labels, so control bytes are refused with the place they came from.
@Suite struct HostileInputTests {
    static let routes = """
        routes:
          - { name: r, path: "/v2/{rest...}", redirect: { to: registry } }
        """

    /// Found by the config fuzzer: a rewrite literal with a non-ASCII byte compiled, but the loader
    /// (which then allowed only visible ASCII) rejected the result. Compiler and loader now agree:
    /// bytes ≥ 0x80 pass in templates, as they do in request paths.
    @Test func nonASCIIRewriteLiteralsCompileAndLoad() throws {
        let snapshot = try Fixture(["ranges.csv": "192.0.2.0/24,cloud\n"]).compile("""
            providers:
              - { name: cloud, registry: registry.example }
            sources:
              - { format: csv, path: ranges.csv }
            routes:
              - { name: r, path: "/v2/{rest...}", redirect: { to: registry, rewrite: "/caf\u{e9}/{rest}" } }
            """)
        #expect(snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/x").location == "https://registry.example/caf\u{e9}/x")
    }

    /// A rewrite starting with a capture other than {path} could continue the target's host.
    @Test func rewritesStartingWithACaptureAreRejected() {
        let message = Fixture.error("""
            routes:
              - { name: r, path: "/v2/{name}/{rest...}", redirect: { to: "https://mirror.example", rewrite: "{name}/{rest}" } }
            """)
        #expect(message.contains("routes[0].redirect.rewrite") && message.contains("starts with the capture '{name}'"), "\(message)")
        #expect(Fixture.error("""
            routes:
              - { name: r, path: "/v2/{rest...}", redirect: { to: "https://mirror.example", rewrite: "{path}" } }
            """) == "accepted")
    }

    @Test func controlBytesInSourceRegionsAreRejectedWithTheirPlace() {
        let aws = #"{"prefixes": [{"ip_prefix": "192.0.2.0/24", "region": "us-east-1\r\nX-Injected: 1", "service": "AMAZON"}], "ipv6_prefixes": []}"#
        let message = Fixture.error("""
            providers:
              - { name: aws, sources: [{ format: aws-ip-ranges, path: aws.json }] }
            \(HostileInputTests.routes)
            """, files: ["aws.json": aws])
        #expect(message.contains("aws.json: prefixes[0]") && message.contains("control byte 0xd"), "\(message)")
    }

    @Test func controlBytesInCSVProvidersAreRejected() {
        let message = Fixture.error("""
            sources:
              - { format: csv, path: ranges.csv }
            \(HostileInputTests.routes)
            """, files: ["ranges.csv": "192.0.2.0/24,clo\u{1}ud,us\n"])
        #expect(message.contains("ranges.csv:1") && message.contains("control byte 0x1"), "\(message)")
    }

    @Test func controlBytesInVendorNamesAreRejected() {
        let message = Fixture.error("""
            sources:
              - { format: k8s-asns, path: vendor.yaml }
            \(HostileInputTests.routes)
            """, files: ["vendor.yaml": "name: \"evil\\u007f\"\nasns: [64500]\n"])
        #expect(message.contains("vendor.yaml") && message.contains("control byte 0x7f"), "\(message)")
    }

    @Test func controlBytesInConfigNamesAreRejected() {
        let message = Fixture.error("""
            routes:
              - { name: "r\\u0007", path: /x, pass: true }
            """)
        #expect(message.contains("control byte 0x7"), "\(message)")
    }
}

extension Fixture {
    /// The error compiling `config` with `files` gives, or "accepted".
    static func error(_ config: String, files: [String: String] = [:]) -> String {
        do {
            return try Fixture(files).compileError(config)
        } catch {
            return "fixture: \(error)"
        }
    }
}
