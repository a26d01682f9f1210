import RedirectorCore

/// A snapshot with a health-checked pool, built in memory:
/// - aws: 192.0.2.0/24 in us-east-1, whose registry pool `aws-use1` has two checked members
///   (`https://a.use1.test`, `https://b.use1.test`, slots 0 and 1); the provider's own registry,
///   for every region, is `https://registry.aws.test` (slot 2, unchecked);
/// - one route: `/v2/…` → 302 to the client's provider registry; everything else passes.
enum HealthTestSnapshot {
    /// The pool's members, in slot order.
    static let members = ["https://a.use1.test", "https://b.use1.test"]
    /// The provider-wide registry (the `provider` fallback step).
    static let providerRegistry = "https://registry.aws.test"

    /// - Parameters:
    ///   - checks: the check URL of each member of `aws-use1`.
    ///   - intervalMilliseconds, timeoutMilliseconds, rise, fall: every check's settings.
    static func bytes(checks: [String] = ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"], intervalMilliseconds: UInt32 = 1000,
                      timeoutMilliseconds: UInt32 = 500, rise: UInt8 = 2, fall: UInt8 = 3, createdAt: UInt64 = 1_700_000_000) -> [UInt8] {
        var strings = StringTableBuilder()
        var pools = PoolListBuilder()
        let poolMembers = zip(members, checks).map { url, check in
            let seed = Array(url.utf8).withUnsafeBytes { PoolMember.seed(url: $0) }
            let health = HealthCheck(url: strings.intern(check), method: strings.intern("GET"), intervalMilliseconds: intervalMilliseconds,
                                     timeoutMilliseconds: timeoutMilliseconds, rise: rise, fall: fall, expectedStatuses: [])
            return PoolMember(url: strings.intern(url), seed: seed, slot: 0, health: health)
        }
        let regional = pools.add(Pool(name: strings.intern("aws-use1"), members: poolMembers))
        let provider = pools.single(providerRegistry, strings: &strings)
        let aws = Provider(
            name: strings.intern("aws"), targets: TargetHosts(registry: provider),
            regionTargets: [RegionTarget(region: strings.intern("us-east-1"), targets: TargetHosts(registry: regional))])
        let attributes = [MatchAttributes(provider: 0, region: strings.intern("us-east-1"))]
        let v4: [(prefix: IPPrefix, value: UInt32)] = [(IPPrefix("192.0.2.0/24")!, 0)]
        let routes = [
            Route(name: strings.intern("registry"), methods: MethodFilter(methods: [strings.intern("GET"), strings.intern("HEAD")]),
                  path: try! PathPattern(parsing: "/v2/{rest...}", strings: &strings), clients: .matched,
                  action: .redirect(status: 302, target: .provider(.registry, provider: nil), path: [], keepQuery: true)),
        ]
        let policy = Policy(providers: [aws], routes: routes, fallback: .pass, pools: pools.pools)
        let contents = SnapshotContents(
            strings: strings, attributes: attributes,
            ipv4: PoptrieBuilder.build(family: .v4, entries: v4, valueCount: attributes.count),
            ipv6: PoptrieBuilder.build(family: .v6, entries: [], valueCount: attributes.count),
            prefixCounts: (v4.count, 0), policy: policy, report: "health test", createdAt: createdAt)
        return contents.encoded()
    }

    /// The snapshot of ``bytes(checks:intervalMilliseconds:timeoutMilliseconds:rise:fall:createdAt:)``.
    static func make(checks: [String] = ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"], intervalMilliseconds: UInt32 = 1000,
                     timeoutMilliseconds: UInt32 = 500, rise: UInt8 = 2, fall: UInt8 = 3) throws -> Snapshot {
        try Snapshot(bytes: bytes(checks: checks, intervalMilliseconds: intervalMilliseconds,
                                  timeoutMilliseconds: timeoutMilliseconds, rise: rise, fall: fall))
    }

    /// A state for `snapshot` in which the members in `down` are down (the others up or unchecked).
    static func state(for snapshot: Snapshot, down: Set<Int>, writtenAt: Int64, staleAfter: Int64 = 10_000) -> HealthState {
        let records = snapshot.policy.members.map { member in
            let slot = Int(member.slot)
            if down.contains(slot) { return MemberHealth(state: .down, failure: .timeout, since: writtenAt, error: "timed out") }
            return MemberHealth(state: member.health == nil ? .unchecked : .up, since: writtenAt)
        }
        return HealthState(records: records, writtenAt: writtenAt, staleAfter: staleAfter)
    }
}
