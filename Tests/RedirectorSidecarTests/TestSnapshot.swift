#if canImport(Glibc)
import Glibc
#endif
import RedirectorCore

/// A small snapshot built in memory (no compiler needed):
/// - aws: 192.0.2.0/24 (us-east-1), 192.0.2.128/25 (eu-west-1, own registry host), 2001:db8:a::/48;
/// - gcp: 198.51.100.0/24 (us-central1);
/// - routes: `not-allowed` (non-GET/HEAD /v2/… → 405), `api-root` (/v2/ → 200 + header), `catalog` (404),
///   `registry` (/v2/… → 302 to the provider's registry), `artifacts` (/binaries/… → 307), else pass.
enum TestSnapshot {
    static func bytes(trusted: [String] = [], createdAt: UInt64 = 1_700_000_000, awsRegistry: String = "https://registry.aws.test") -> [UInt8] {
        var strings = StringTableBuilder()
        var pools = PoolListBuilder()
        let aws = Provider(
            name: strings.intern("aws"),
            targets: TargetHosts(registry: pools.single(awsRegistry, strings: &strings), artifacts: pools.single("https://artifacts.aws.test", strings: &strings)),
            regionTargets: [RegionTarget(region: strings.intern("eu-west-1"),
                                         targets: TargetHosts(registry: pools.single("https://eu-west-1.registry.aws.test", strings: &strings)))])
        let gcp = Provider(
            name: strings.intern("gcp"),
            targets: TargetHosts(registry: pools.single("https://registry.gcp.test", strings: &strings), artifacts: pools.single("https://artifacts.gcp.test/mirror", strings: &strings)))
        let attributes = [
            MatchAttributes(provider: 0, region: strings.intern("us-east-1")),
            MatchAttributes(provider: 0, region: strings.intern("eu-west-1")),
            MatchAttributes(provider: 1, region: strings.intern("us-central1"), asn: 15169),
        ]
        let v4: [(prefix: IPPrefix, value: UInt32)] = [
            (IPPrefix("192.0.2.0/24")!, 0), (IPPrefix("192.0.2.128/25")!, 1), (IPPrefix("198.51.100.0/24")!, 2),
            (IPPrefix("127.0.0.2/32")!, 0), (IPPrefix("127.0.0.3/32")!, 2),
        ]
        let v6: [(prefix: IPPrefix, value: UInt32)] = [(IPPrefix("2001:db8:a::/48")!, 0)]
        let getHead = MethodFilter(methods: [strings.intern("GET"), strings.intern("HEAD")])
        let routes = [
            Route(name: strings.intern("not-allowed"), methods: MethodFilter(methods: getHead.methods, isNegated: true),
                  path: try! PathPattern(parsing: "/v2/{rest...}", strings: &strings), clients: .any,
                  action: .respond(status: 405, headers: [])),
            Route(name: strings.intern("api-root"), methods: getHead,
                  path: try! PathPattern(parsing: "/v2/", strings: &strings), clients: .any,
                  action: .respond(status: 200, headers: [Header(name: strings.intern("Docker-Distribution-Api-Version"),
                                                                 value: strings.intern("registry/2.0"))])),
            Route(name: strings.intern("catalog"), methods: getHead,
                  path: try! PathPattern(parsing: "/v2/_catalog", strings: &strings), clients: .any,
                  action: .respond(status: 404, headers: [])),
            Route(name: strings.intern("registry"), methods: getHead,
                  path: try! PathPattern(parsing: "/v2/{rest...}", strings: &strings), clients: .matched,
                  action: .redirect(status: 302, target: .provider(.registry, provider: nil), path: [], keepQuery: true)),
            Route(name: strings.intern("artifacts"), methods: getHead,
                  path: try! PathPattern(parsing: "/binaries/{rest...}", strings: &strings), clients: .matched,
                  action: .redirect(status: 307, target: .provider(.artifacts, provider: nil), path: [], keepQuery: true)),
        ]
        let policy = Policy(providers: [aws, gcp], routes: routes, fallback: .pass,
                            trustedProxies: trusted.compactMap { IPPrefix($0) }, pools: pools.pools)
        let contents = SnapshotContents(
            strings: strings, attributes: attributes,
            ipv4: PoptrieBuilder.build(family: .v4, entries: v4, valueCount: attributes.count),
            ipv6: PoptrieBuilder.build(family: .v6, entries: v6, valueCount: attributes.count),
            prefixCounts: (v4.count, v6.count), policy: policy, report: "test", createdAt: createdAt)
        return contents.encoded()
    }

    static func make(trusted: [String] = []) throws -> Snapshot {
        try Snapshot(bytes: bytes(trusted: trusted))
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() -> String {
        var template = Array("/tmp/redirector-sidecar-test-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
        }
        return path ?? "/tmp"
    }

    /// Writes `bytes` to `path` through a temporary file and rename (atomic replacement).
    static func write(_ bytes: [UInt8], to path: String, atomically: Bool = true) {
        let target = atomically ? path + ".tmp" : path
        let descriptor = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { return }
        _ = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        close(descriptor)
        if atomically { rename(target, path) }
    }
}
