import Foundation
import RedirectorCompiler
import RedirectorCore
import Testing

/// `redirector diff`: prefixes that moved, appeared or vanished, counted per provider by name;
/// destinations and routes added, removed and changed.
@Suite struct SnapshotDiffTests {
    static func config(registry: String, route: String) -> String {
        """
        version: 1
        providers:
          - name: alpha
            registry: \(registry)
            sources: [{ format: csv, path: alpha.csv }]
          - name: beta
            registry: https://beta.example
            sources: [{ format: csv, path: beta.csv }]
        routes:
        \(route)
        """
    }

    static let redirect = "  - { name: registry, path: \"/v2/{rest...}\", redirect: { to: registry } }"

    @Test func countsPrefixChangesPerProviderAndListsDestinationsAndRoutes() throws {
        let old = try Fixture([
            "alpha.csv": "prefix,provider,region\n198.51.100.0/24,,eu-west-1\n203.0.113.0/24,,us-east-1\n",
            "beta.csv": "prefix,provider,region\n192.0.2.0/24,,\n",
        ]).compile(SnapshotDiffTests.config(registry: "https://alpha.example", route: SnapshotDiffTests.redirect))
        // 198.51.100.0/24 changes region, 203.0.113.0/24 goes to beta, 100.64.0.0/10 is new,
        // alpha's registry moves host, the registry route goes and a ping route comes.
        let new = try Fixture([
            "alpha.csv": "prefix,provider,region\n198.51.100.0/24,,eu-central-1\n100.64.0.0/10,,us-east-1\n",
            "beta.csv": "prefix,provider,region\n192.0.2.0/24,,\n203.0.113.0/24,,\n",
        ]).compile(SnapshotDiffTests.config(
            registry: "https://alpha-2.example",
            route: SnapshotDiffTests.redirect.replacingOccurrences(of: "/v2/{rest...}", with: "/v2/{repo...}/blobs/{d:digest}")
                + "\n  - { name: ping, path: /ping, respond: { status: 200 } }"))
        let diff = SnapshotDiff(old: old, new: new)
        #expect(diff.prefixes.map { "\($0.prefix) \($0.old?.provider ?? "-")/\($0.old?.region ?? "") -> \($0.new?.provider ?? "-")/\($0.new?.region ?? "")" } == [
            "100.64.0.0/10 -/ -> alpha/us-east-1",
            "198.51.100.0/24 alpha/eu-west-1 -> alpha/eu-central-1",
            "203.0.113.0/24 alpha/us-east-1 -> beta/",
        ])
        #expect(diff.providerCounts == [
            SnapshotDiff.ProviderCounts(provider: "alpha", added: 1, removed: 1, changed: 1),
            SnapshotDiff.ProviderCounts(provider: "beta", added: 1, removed: 0, changed: 0),
        ])
        #expect(diff.addedDestinations == ["https://alpha-2.example"])
        #expect(diff.removedDestinations == ["https://alpha.example"])
        #expect(diff.addedRoutes == ["ping"] && diff.removedRoutes.isEmpty && diff.changedRoutes == ["registry"])
        #expect(!diff.isEmpty)
    }

    @Test func aSnapshotAgainstItselfOrItsRecompileHasNoChanges() throws {
        let fixture = try Fixture([
            "alpha.csv": "prefix,provider,region\n198.51.100.0/24,,eu-west-1\n2001:db8::/32,,eu-west-1\n",
            "beta.csv": "prefix,provider,region\n192.0.2.0/24,,\n",
        ])
        let config = SnapshotDiffTests.config(registry: "https://alpha.example", route: SnapshotDiffTests.redirect)
        let first = try fixture.compile(config), second = try fixture.compile(config)
        #expect(SnapshotDiff(old: first, new: first).isEmpty)
        #expect(SnapshotDiff(old: first, new: second).isEmpty)
    }
}
