import RedirectorCompiler
import RedirectorCore
import Testing

/// Pools compiled from YAML: weighted rendezvous choice, stickiness, priorities, health, the
/// fallback chain (region → nearest region → provider → default → pass), header routes, and
/// the compile errors of bad pool configs.
@Suite struct PoolDecisionTests {
    /// alpha has clients in two AWS regions and a third region with no prefixes.
    static let sources: [String: String] = [
        "alpha.csv": "prefix,provider,region\n198.51.100.0/25,,eu-west-1\n198.51.100.128/25,,us-east-1\n203.0.113.0/24,,eu-central-1\n",
    ]

    static func compile(_ body: String) throws -> Snapshot {
        try Fixture(sources).compile("version: 1\n" + body)
    }

    /// A health state with `down` slots marked down (keep it alive while its view is used).
    static func health(_ snapshot: Snapshot, down: Set<Int>) -> HealthState {
        HealthState(records: (0..<snapshot.policy.memberCount).map {
            MemberHealth(state: down.contains($0) ? .down : .up, since: 0)
        }, writtenAt: 0, staleAfter: 10_000)
    }

    static let weighted = """
        pools:
          files:
            members:
              - { url: "https://a.example", weight: 1 }
              - { url: "https://b.example", weight: 2 }
              - { url: "https://c.example", weight: 3 }
        routes:
          - name: files
            path: /files/{name}
            redirect: { to: { pool: files } }
        """

    /// The member each of `count` objects goes to.
    static func assignment(_ snapshot: Snapshot, count: Int, health: HealthView = .allUp) -> [String] {
        (0..<count).map { snapshot.explain(client: "192.0.2.1", method: "GET", target: "/files/object-\($0)", health: health).target }
    }

    @Test func weightsSplitObjectsAndOnlyADownMembersShareMoves() throws {
        let snapshot = try PoolDecisionTests.compile(PoolDecisionTests.weighted)
        let count = 100_000
        let before = PoolDecisionTests.assignment(snapshot, count: count)
        var shares: [String: Int] = [:]
        for member in before { shares[member, default: 0] += 1 }
        for (member, weight) in [("https://a.example", 1.0), ("https://b.example", 2.0), ("https://c.example", 3.0)] {
            let share = Double(shares[member] ?? 0) / Double(count)
            let expected = weight / 6
            #expect(abs(share - expected) / expected <= 0.02, "share of \(member): \(share), weight share \(expected)")
        }
        // Stickiness: asking again gives the same member.
        #expect(PoolDecisionTests.assignment(snapshot, count: 1000) == Array(before.prefix(1000)))

        // b (slot 1) down: exactly b's objects move, and they split between a and c by weight (1:3).
        let state = PoolDecisionTests.health(snapshot, down: [1])
        let after = PoolDecisionTests.assignment(snapshot, count: count, health: state.view)
        var moved: [String: Int] = [:]
        for (old, new) in zip(before, after) where old != new {
            #expect(old == "https://b.example", "an object of \(old) moved to \(new)")
            moved[new, default: 0] += 1
        }
        #expect(moved.values.reduce(0, +) == shares["https://b.example"])
        let toA = Double(moved["https://a.example"] ?? 0) / Double(moved.values.reduce(0, +))
        #expect(abs(toA - 0.25) / 0.25 <= 0.05, "a got \(toA) of b's objects, weight share 0.25")
    }

    @Test func priorityMembersServeOnlyWhenEveryPreferredMemberIsDown() throws {
        let snapshot = try PoolDecisionTests.compile("""
            pools:
              files:
                members:
                  - { url: "https://a.example" }
                  - { url: "https://b.example" }
                  - { url: "https://backup.example", priority: 1 }
                fallback: pass
            routes:
              - name: files
                path: /files/{name}
                redirect: { to: { pool: files } }
            """)
        let all = Set(PoolDecisionTests.assignment(snapshot, count: 200))
        #expect(all == ["https://a.example", "https://b.example"])
        let oneDown = PoolDecisionTests.health(snapshot, down: [0])
        #expect(Set(PoolDecisionTests.assignment(snapshot, count: 200, health: oneDown.view)) == ["https://b.example"])
        let bothDown = PoolDecisionTests.health(snapshot, down: [0, 1])
        let backup = snapshot.explain(client: "192.0.2.1", method: "GET", target: "/files/x", health: bothDown.view)
        #expect(backup.target == "https://backup.example" && backup.step == .primary)
        #expect(backup.skipped == ["https://a.example(files):down", "https://b.example(files):down"])
        let allDown = PoolDecisionTests.health(snapshot, down: [0, 1, 2])
        let passed = snapshot.explain(client: "192.0.2.1", method: "GET", target: "/files/x", health: allDown.view)
        #expect(passed.action == "pass" && passed.step == .pass && passed.route == "files")
        #expect(passed.description.contains("step=pass"))
        // Skip reasons when all are up: one winner, the other preferred member lost on weight, the backup on priority.
        let up = snapshot.explain(client: "192.0.2.1", method: "GET", target: "/files/x")
        #expect(up.skipped.count == 2 && up.skipped.contains("https://backup.example(files):priority"))
        #expect(up.skipped.contains { $0.hasSuffix(":weight") })
    }

    static let regional = """
        pools:
          eu-west:
            members: [{ url: "https://eu-west.example" }]
          us-east:
            members: [{ url: "https://us-east.example" }]
          sydney:
            members: [{ url: "https://sydney.example" }]
            fallback: pass
        providers:
          - name: alpha
            registry: https://alpha.example
            nearestRegion: true
            regions:
              eu-west-1: { registry: { pool: eu-west } }
              us-east-1: { registry: { pool: us-east } }
              ap-southeast-2: { registry: { pool: sydney } }
            sources: [{ format: csv, path: alpha.csv }]
        defaults:
          unmatched: redirect
          registry: https://global.example
        routes:
          - name: registry
            path: /v2/{rest...}
            redirect: { to: registry }
        """

    @Test func fallbackChainGoesToTheNearestRegionThenTheProviderThenTheDefault() throws {
        let snapshot = try PoolDecisionTests.compile(PoolDecisionTests.regional)
        func ask(_ client: String, down: Set<Int> = []) -> DecisionExplanation {
            let state = PoolDecisionTests.health(snapshot, down: down)
            return withExtendedLifetime(state) { snapshot.explain(client: client, method: "GET", target: "/v2/x", health: state.view) }
        }
        let slots = Dictionary(uniqueKeysWithValues: snapshot.policy.members.map { (snapshot.strings.string($0.url), Int($0.slot)) })
        let euWest = try #require(slots["https://eu-west.example"])
        let usEast = try #require(slots["https://us-east.example"])
        let sydney = try #require(slots["https://sydney.example"])
        #expect(ask("198.51.100.1").target == "https://eu-west.example")
        #expect(ask("198.51.100.1").step == .primary)
        // eu-west-1 down → of us-east-1 (Virginia) and ap-southeast-2 (Sydney), Virginia is nearer to Ireland.
        let failover = ask("198.51.100.1", down: [euWest])
        #expect(failover.target == "https://us-east.example" && failover.step == .nearestRegion)
        #expect(failover.skipped == ["https://eu-west.example(eu-west):down"])
        // A region without a pool (eu-central-1, Frankfurt) folds onto its nearest region with one.
        let folded = ask("203.0.113.1")
        #expect(folded.target == "https://eu-west.example" && folded.step == .nearestRegion)
        // Sydney's pool says `pass` when down, but for clients of other regions it only stands in:
        // with every region down they go on to the provider's own target.
        let provider = ask("198.51.100.1", down: [euWest, usEast, sydney])
        #expect(provider.target == "https://alpha.example" && provider.step == .provider)
        // Sydney is the farthest region from Ireland: reached only when the nearer ones are down.
        #expect(ask("198.51.100.1", down: [euWest, usEast]).target == "https://sydney.example")
        // The provider's own target, then the global default, for an unknown region (no location).
        let unmatched = ask("192.0.2.1")
        #expect(unmatched.target == "https://global.example" && unmatched.step == .primary)
    }

    @Test func failoverModeLeavesRegionsWithoutAPoolOnTheProvidersTarget() throws {
        var fixture = PoolDecisionTests.sources
        fixture["buckets.csv"] = "region,url\neu-west-1,https://eu-west.example\nus-east-1,https://us-east.example\n"
        let snapshot = try Fixture(fixture).compile("""
            version: 1
            providers:
              - name: alpha
                artifacts: https://cdn.example
                nearestRegion: failover
                regionTable: { path: buckets.csv, class: artifacts, health: { path: /, expect: [200, 403] } }
                regions:
                  eu-central-1: { registry: https://eu-central-registry.example }
                sources: [{ format: csv, path: alpha.csv }]
            routes:
              - { name: blob, path: "/b/{rest...}", redirect: { to: artifacts } }
            """)
        let pools = snapshot.policy.pools.map { snapshot.strings.string($0.name) }.filter { !$0.isEmpty }
        #expect(pools == ["alpha/eu-west-1", "alpha/us-east-1"])
        let members = snapshot.policy.members
        let euWest = try #require(members.first { snapshot.strings.string($0.url) == "https://eu-west.example" })
        let usEast = try #require(members.first { snapshot.strings.string($0.url) == "https://us-east.example" })
        let check = try #require(euWest.health)
        #expect(snapshot.strings.string(check.url) == "https://eu-west.example/" && check.expectedStatuses == [200, 403])
        let (eu, us) = (Int(euWest.slot), Int(usEast.slot))
        func ask(_ client: String, down: Set<Int> = []) -> DecisionExplanation {
            let state = PoolDecisionTests.health(snapshot, down: down)
            return withExtendedLifetime(state) { snapshot.explain(client: client, method: "GET", target: "/b/x", health: state.view) }
        }
        // eu-central-1 has no bucket (only a registry target): its artifacts go to the CDN, as
        // without failover (no folding onto a neighbour, whatever the other class has).
        #expect(ask("203.0.113.1").target == "https://cdn.example")
        #expect(ask("198.51.100.1").target == "https://eu-west.example")
        let failover = ask("198.51.100.1", down: [eu])
        #expect(failover.target == "https://us-east.example" && failover.step == .nearestRegion && failover.pool == "alpha/us-east-1")
        #expect(ask("198.51.100.1", down: [eu, us]).target == "https://cdn.example")
        #expect(ask("198.51.100.1", down: [eu, us]).step == .provider)
    }

    @Test func anExplicitRegionEntryWinsOverTheTablesRowWhichMakesNoPool() throws {
        var fixture = PoolDecisionTests.sources
        fixture["buckets.csv"] = "region,url\neu-west-1,https://eu-west.example\nus-east-1,https://us-east.example\n"
        let snapshot = try Fixture(fixture).compile("""
            version: 1
            providers:
              - name: alpha
                regionTable: { path: buckets.csv, class: artifacts, health: { path: / } }
                regions:
                  us-east-1: { artifacts: https://us-east-explicit.example }
                sources: [{ format: csv, path: alpha.csv }]
            routes:
              - { name: blob, path: "/b/{rest...}", redirect: { to: artifacts } }
            """)
        #expect(snapshot.policy.pools.map { snapshot.strings.string($0.name) }.filter { !$0.isEmpty } == ["alpha/eu-west-1"])
        #expect(!snapshot.policy.members.contains { snapshot.strings.string($0.url) == "https://us-east.example" })
        #expect(snapshot.ask("198.51.100.200", "/b/x").target == "https://us-east-explicit.example")
    }

    @Test func providerAndDefaultStepsFollowADownRegion() throws {
        let snapshot = try PoolDecisionTests.compile("""
            pools:
              eu:
                members: [{ url: "https://eu.example" }]
              origin:
                members: [{ url: "https://alpha.example" }]
            providers:
              - name: alpha
                registry: { pool: origin }
                regions:
                  eu-west-1: { registry: { pool: eu } }
                sources: [{ format: csv, path: alpha.csv }]
            defaults:
              unmatched: redirect
              registry: https://global.example
            routes:
              - name: registry
                path: /v2/{rest...}
                redirect: { to: registry }
            """)
        func ask(down: Set<Int>) -> DecisionExplanation {
            let state = PoolDecisionTests.health(snapshot, down: down)
            return withExtendedLifetime(state) {
                snapshot.explain(client: "198.51.100.1", method: "GET", target: "/v2/x", health: state.view)
            }
        }
        let eu = Int(try #require(snapshot.policy.members.first { snapshot.strings.string($0.url) == "https://eu.example" }).slot)
        let origin = Int(try #require(snapshot.policy.members.first { snapshot.strings.string($0.url) == "https://alpha.example" }).slot)
        #expect(ask(down: []).target == "https://eu.example")
        let provider = ask(down: [eu])
        #expect(provider.target == "https://alpha.example" && provider.step == .provider && provider.pool == "origin")
        let global = ask(down: [eu, origin])
        #expect(global.target == "https://global.example" && global.step == .globalDefault)
        #expect(global.description.contains("step=default"))
    }

    @Test func singleURLConfigsExplainAsBefore() throws {
        let snapshot = try PoolDecisionTests.compile("""
            providers:
              - name: alpha
                registry: https://alpha.example
                sources: [{ format: csv, path: alpha.csv }]
            routes:
              - name: registry
                path: /v2/{rest...}
                redirect: { to: registry }
            """)
        #expect(snapshot.ask("198.51.100.1", "/v2/x").description
            == "action=redirect status=302 location=https://alpha.example/v2/x provider=alpha region=eu-west-1 prefix=198.51.100.0/25 asn=- source=alpha.csv route=registry target=https://alpha.example")
    }

    @Test func hashKeyCaptureKeepsOneBlobOnOneMirrorWhateverTheRepository() throws {
        let snapshot = try PoolDecisionTests.compile("""
            pools:
              blobs:
                members: [{ url: "https://a.example" }, { url: "https://b.example" }, { url: "https://c.example" }]
            routes:
              - name: blob
                path: /v2/{repo...}/blobs/{digest:digest}
                redirect: { to: { pool: blobs }, hashOn: "{digest}" }
            """)
        for index in 0..<50 {
            let digest = "sha256:" + String(repeating: String(index % 10), count: 64)
            let first = snapshot.ask("192.0.2.1", "/v2/library/one/blobs/\(digest)").target
            #expect(snapshot.ask("192.0.2.1", "/v2/other/two/blobs/\(digest)").target == first)
        }
    }

    @Test func headerConditionsChooseRoutes() throws {
        let snapshot = try PoolDecisionTests.compile("""
            routes:
              - name: cri-o
                path: /v2/{rest...}
                headers: { User-Agent: { prefix: "cri-o/" } }
                redirect: { to: "https://plain.example" }
              - name: tagged
                path: /v2/{rest...}
                headers: { X-Mirror: { exact: "yes" }, Accept: { present: true } }
                redirect: { to: "https://tagged.example" }
              - name: cdn
                path: /v2/{rest...}
                redirect: { to: "https://cdn.example" }
            """)
        #expect(snapshot.policy.headerNames.map { snapshot.strings.string($0) } == ["user-agent", "accept", "x-mirror"])
        func ask(_ headers: [(String, String)]) -> String {
            snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/x", headers: headers.map { (name: $0.0, value: $0.1) }).route
        }
        #expect(ask([]) == "cdn")
        #expect(ask([("user-agent", "cri-o/1.28.1 go/1.21")]) == "cri-o")
        #expect(ask([("USER-AGENT", "cri-o/1")]) == "cri-o")  // names compare case-insensitively
        #expect(ask([("User-Agent", "CRI-O/1")]) == "cdn")  // values byte for byte
        #expect(ask([("User-Agent", "containerd/1.7")]) == "cdn")
        #expect(ask([("x-mirror", "yes"), ("accept", "*/*")]) == "tagged")
        #expect(ask([("x-mirror", "yes!"), ("accept", "*/*")]) == "cdn")
        #expect(ask([("x-mirror", "yes")]) == "cdn")  // every condition must hold
    }

    @Test func badPoolConfigsNameTheirPlace() throws {
        let fixture = try Fixture(PoolDecisionTests.sources)
        func error(_ pools: String, target: String = "{ pool: p }") -> String {
            fixture.compileError("version: 1\npools:\n\(pools)\nroutes:\n  - { name: r, path: /x, redirect: { to: \(target) } }\n")
        }
        let name = fixture.path("redirector.yaml")
        #expect(error("  p: { members: [] }") == "\(name): pools.p.members: a pool needs at least one member")
        #expect(error("  p: { members: [{ url: a.example, weight: 0 }] }") == "\(name): pools.p.members[0].weight: must be at least 1")
        #expect(error("  p: { members: [{ url: a.example }, { url: https://a.example }] }")
            == "\(name): pools.p.members[1].url: 'https://a.example' is listed twice")
        #expect(error("  p: { members: [{ url: 'ftp://a.example' }] }").hasPrefix("\(name): pools.p.members[0].url: 'ftp://a.example' is not"))
        #expect(error("  p: { members: [{ url: a.example }] }", target: "{ pool: q }") == "\(name): routes[0].redirect.to: unknown pool 'q' (known: p)")
        #expect(error("  p: { members: [{ url: a.example }], fallback: q }\n  q: { members: [{ url: b.example }], fallback: p }")
            == "\(name): pools.p.fallback: fallbacks form a cycle: p → q → p")
        #expect(error("  p: { members: [{ url: a.example }], fallback: nowhere }")
            == "\(name): pools.p.fallback: 'nowhere' is not 'pass' or the name of another pool")
        #expect(error("  p: { members: [{ url: a.example, health: { interval: 10 parsecs } }] }")
            == "\(name): pools.p.members[0].health.interval: '10 parsecs' is not a duration between 1ms and 24h (e.g. 500ms, 10s, 2m, 1h)")
        #expect(error("  p: { members: [{ url: a.example }], health: { interval: 1s, timeout: 2s } }")
            == "\(name): pools.p.health.timeout: must not exceed the interval (1000 ms)")
        #expect(error("  p: { members: [{ url: a.example, health: { method: POST } }] }")
            == "\(name): pools.p.members[0].health.method: must be GET or HEAD, not 'POST'")
        #expect(error("  p: { members: [{ url: a.example, wieght: 2 }] }").contains("unknown key 'wieght'"))
        #expect(error("  p: { members: [{ url: a.example, health: true }] }").contains("`health: true` means nothing"))
    }

    @Test func healthChecksCompileAgainstTheMemberURL() throws {
        let snapshot = try PoolDecisionTests.compile("""
            pools:
              p:
                health: { path: /healthz, interval: 500ms, timeout: 200ms, rise: 1, fall: 2, expect: [200, 204] }
                members:
                  - { url: "https://a.example/base/" }
                  - { url: "https://b.example", health: { path: "https://status.example/b", method: GET } }
                  - { url: "https://c.example", health: false }
            routes:
              - { name: r, path: /x, redirect: { to: { pool: p } } }
            """)
        let members = snapshot.policy.members
        let strings = snapshot.strings
        let a = try #require(members[0].health)
        #expect(strings.string(a.url) == "https://a.example/base/healthz" && strings.string(a.method) == "HEAD")
        #expect(a.intervalMilliseconds == 500 && a.timeoutMilliseconds == 200 && a.rise == 1 && a.fall == 2 && a.expectedStatuses == [200, 204])
        let b = try #require(members[1].health)
        #expect(strings.string(b.url) == "https://status.example/b" && strings.string(b.method) == "GET" && b.intervalMilliseconds == 10_000)
        #expect(members[2].health == nil)
    }
}
