import Foundation
import RedirectorCore
import Testing

/// Regression tests for what the fuzzers found in the snapshot loader (Fuzz/Targets/snapshot.swift,
/// decide.swift): a snapshot — even one with a valid checksum — may not carry bytes that would let
/// a decision inject a header or name another host. The loader rejects it whole.
@Suite struct HostileSnapshotTests {
    /// A one-provider snapshot whose strings and templates the test chooses.
    static func snapshotBytes(target: String = "https://registry.example", region: String = "us-east-1",
                              template: [String] = [], headerName: String = "X-Why", routeName: String = "r") -> [UInt8] {
        var strings = StringTableBuilder()
        var pools = PoolListBuilder()
        let regionRef = strings.intern(region)
        let pattern = try! PathPattern(parsing: "/v2/{name}/{rest...}", strings: &strings)
        let parts: [TemplatePart] = template.map { piece in
            switch piece {
            case "{name}": return .capture(0)
            case "{rest}": return .capture(1)
            case "{path}": return .path
            default: return .literal(strings.intern(piece))
            }
        }
        let provider = Provider(name: strings.intern("cloud"), targets: TargetHosts(registry: pools.single(target, strings: &strings)))
        let routes = [
            Route(name: strings.intern(routeName), methods: MethodFilter(methods: [strings.intern("GET")]), path: pattern,
                  clients: .any, action: .redirect(status: 302, target: .provider(.registry, provider: nil), path: parts, keepQuery: true)),
            Route(name: strings.intern("answer"), methods: MethodFilter(methods: [], isNegated: true), path: pattern, clients: .any,
                  action: .respond(status: 404, headers: [Header(name: strings.intern(headerName), value: strings.intern("no"))])),
        ]
        let contents = snapshotContents(entries: [(prefix("192.0.2.0/24"), 0)], valueCount: 1, strings: strings,
                                        policy: Policy(providers: [provider], routes: routes, pools: pools.pools),
                                        attributes: [MatchAttributes(provider: 0, region: regionRef)])
        return contents.encoded()
    }

    static func loadError(_ bytes: [UInt8]) -> String? {
        do {
            _ = try Snapshot(bytes: bytes, name: "hostile.rdb")
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func theBaselineLoadsAndRedirects() throws {
        let snapshot = try Snapshot(bytes: HostileSnapshotTests.snapshotBytes())
        let explanation = snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/a/b?q")
        #expect(explanation.location == "https://registry.example/v2/a/b?q")
    }

    /// Found by the snapshot fuzzer: a TAB in a target URL (checksum repaired) was loaded and copied
    /// into Location. Every control byte and DEL in any string is now rejected at open.
    @Test(arguments: ["https://registry.example\t", "https://registry.example\r\nSet-Cookie: a=b", "https://reg\u{0}istry.example",
                      "https://registry.example/\u{7f}"])
    func controlBytesInTargetsAreRejected(target: String) {
        let error = HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(target: target))
        #expect(error != nil)
        #expect(error?.hasPrefix("hostile.rdb: ") == true, "\(error ?? "")")
    }

    @Test(arguments: ["us-east-1\r\nX-Injected: 1", "eu\tw", "\u{1b}[31mred"])
    func controlBytesInNamesAreRejected(region: String) {
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(region: region))?.contains("control byte") == true)
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(routeName: region))?.contains("control byte") == true)
    }

    /// A target must be an http(s) base URL whose authority nothing can extend.
    @Test(arguments: ["registry.example", "javascript:alert(1)", "//evil.example", "https://", "https://:443",
                      "https://user@evil.example", "https://a.example?x=", "https://a.example#f", "https://a.example/p q",
                      "https://a.example\\@evil.example", "ftp://a.example"])
    func targetsThatAreNotBaseURLsAreRejected(target: String) {
        let error = HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(target: target))
        #expect(error != nil, "\(target) was accepted")
    }

    @Test(arguments: ["https://a.example", "http://a.example:8080", "https://a.example/base/path", "https://A-1.example.com/x_y~z"])
    func baseURLsAreAccepted(target: String) {
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(target: target)) == nil)
    }

    /// A rewrite starting with a capture could continue the host: `https://registry.example` +
    /// `@evil.example/…` is a redirect to evil.example. Such templates are rejected at open (and by
    /// the compiler); templates starting with '/', with {path} or empty are fine.
    @Test func templatesMustStartThePath() throws {
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(template: ["{name}", "/x"]))?
            .contains("does not start with '/'") == true)
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(template: ["", "{rest}"])) != nil)
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(template: ["/a b"])) != nil)
        for good in [["/x/", "{name}"], ["{path}"], [""], ["/"], ["/caf\u{e9}/", "{rest}"]] {
            #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(template: good)) == nil, "\(good)")
        }
        // The attack the rule prevents, spelled out on an accepted template: the capture comes after '/'.
        let snapshot = try Snapshot(bytes: HostileSnapshotTests.snapshotBytes(template: ["/", "{name}"]))
        #expect(snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/@evil.example/x").location
            == "https://registry.example/@evil.example")
    }

    @Test func headerNamesMustBeTokens() {
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(headerName: "X Why")) != nil)
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(headerName: "X:Why")) != nil)
        #expect(HostileSnapshotTests.loadError(HostileSnapshotTests.snapshotBytes(headerName: "")) != nil)
    }

    /// Found by the in-place replacement test (Tests/Integration/test_robustness.py): a snapshot
    /// used to be a mapping of its file, so `cp new.rdb live.rdb` changed the answers of the open
    /// snapshot without validation, and truncating the file made the next lookup die of SIGBUS.
    /// The file is now read into private memory: the open snapshot never changes.
    @Test func anOpenSnapshotIgnoresChangesToItsFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rdr-inplace-\(UInt64.random(in: 0...UInt64.max)).rdb").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = HostileSnapshotTests.snapshotBytes(target: "https://first.example")
        try Data(first).write(to: URL(fileURLWithPath: path))
        let snapshot = try Snapshot.open(path: path)
        let want = "https://first.example/v2/a/b"
        #expect(snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/a/b").location == want)
        // Rewritten in place (same inode), then truncated to nothing.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: HostileSnapshotTests.snapshotBytes(target: "https://second.example", region: "x"))
        try handle.truncate(atOffset: 100)
        try handle.close()
        #expect(snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/a/b").location == want)
        truncate(path, 0)
        #expect(snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/a/b").location == want)
        #expect(snapshot.ipv4.visiblePrefixes().count == 1)
        #expect(throws: SnapshotError.self) { try Snapshot.open(path: path) }
    }

    /// Snapshot(bytes:) copies contiguous collections with one memcpy (it took ~75 ms per 1.3 MB
    /// element by element); other collections still work and give the same snapshot.
    @Test func loadingFromAnyCollectionGivesTheSameSnapshot() throws {
        let bytes = HostileSnapshotTests.snapshotBytes()
        let fromArray = try Snapshot(bytes: bytes)
        let fromSlice = try Snapshot(bytes: bytes[...])
        let fromLazy = try Snapshot(bytes: bytes.lazy.map { $0 })
        for snapshot in [fromSlice, fromLazy] {
            #expect(snapshot.checksum == fromArray.checksum)
            #expect(snapshot.explain(client: "192.0.2.9", method: "GET", target: "/v2/a/b")
                == fromArray.explain(client: "192.0.2.9", method: "GET", target: "/v2/a/b"))
        }
    }
}
