import Glibc
import RedirectorCore
import RedirectorHealth
@testable import RedirectorSidecar
import Testing

/// `X-Forwarded-For` of an AWS us-east-1 client of ``HealthTestSnapshot``.
private let client = "X-Forwarded-For: 192.0.2.10"

/// A sidecar serving ``HealthTestSnapshot`` (127.0.0.1 trusted), with its store and metrics at hand.
private struct HealthSidecar {
    let context: SidecarContext
    var store: SnapshotStore { context.store }
    var snapshot: Snapshot { context.store.current!.snapshot }
    let directory = TestSnapshot.temporaryDirectory()

    init(explain: Bool = true) {
        let path = directory + "/s.rdb"
        TestSnapshot.write(HealthTestSnapshot.bytes(), to: path)
        var configuration = SidecarConfiguration(snapshotPath: path)
        configuration.trustedProxies = [IPPrefix("127.0.0.1/32")!]
        configuration.explain = explain
        let metrics = SidecarMetrics()
        let store = SnapshotStore(path: path, extraTrustedProxies: configuration.trustedProxies, metrics: metrics, logger: quietLogger())
        store.reload(reason: "test")
        let lifecycle = ServerLifecycle()
        lifecycle.allListenersBound()
        context = SidecarContext(translator: RequestTranslator(configuration: configuration), store: store, metrics: metrics,
                                 logger: quietLogger(), lifecycle: lifecycle, presence: offlinePresenceChecker())
    }

    func connect(mode: ListenerMode = .auto) throws -> Connection {
        try Connection(context: context, mode: mode, peer: "127.0.0.1")
    }

    /// Decides with the members in `down` down.
    func setDown(_ down: Set<Int>, writtenAt: Int64 = unixMilliseconds()) {
        let state = HealthTestSnapshot.state(for: snapshot, down: down, writtenAt: writtenAt)
        #expect(store.setHealth(state, fingerprint: snapshot.healthFingerprint))
    }

    func metrics() throws -> String {
        try connect().request("/metrics").body
    }
}

@Suite struct HealthDecisionTests {
    /// The member the rendezvous hash picks for `/v2/x` with every member up, and the other one.
    private func members(_ sidecar: HealthSidecar) throws -> (chosen: String, other: String) {
        let location = try #require(try sidecar.connect().request("/ext_authz/v2/x", headers: [client]).header("location"))
        let chosen = try #require(HealthTestSnapshot.members.first { location.hasPrefix($0) })
        let other = try #require(HealthTestSnapshot.members.first { $0 != chosen })
        return (chosen, other)
    }

    @Test func aDownMemberIsSkippedForTheNextMemberThenTheFallback() throws {
        let sidecar = HealthSidecar()
        let (chosen, other) = try members(sidecar)
        let chosenSlot = try #require(HealthTestSnapshot.members.firstIndex(of: chosen))

        sidecar.setDown([chosenSlot])
        let failover = try sidecar.connect().request("/ext_authz/v2/x", headers: [client])
        #expect(failover.status == 302 && failover.header("location") == other + "/v2/x")
        let explanation = try #require(failover.header("x-redirector-explain"))
        #expect(explanation.contains("pool=aws-use1") && explanation.contains("skipped=\(chosen)(aws-use1):down"))

        sidecar.setDown([0, 1])
        let fallback = try sidecar.connect().request("/ext_authz/v2/x", headers: [client])
        #expect(fallback.status == 302 && fallback.header("location") == HealthTestSnapshot.providerRegistry + "/v2/x")
        #expect(fallback.header("x-redirector-explain")?.contains("step=provider") == true)

        sidecar.setDown([0, 1, 2])
        let passed = try sidecar.connect().request("/ext_authz/v2/x", headers: [client])
        #expect(passed.status == 200 && passed.header("location") == nil, "every step down: the request passes")

        #expect(sidecar.store.setHealth(nil, fingerprint: 0))
        #expect(try sidecar.connect().request("/ext_authz/v2/x", headers: [client]).header("location") == chosen + "/v2/x",
                "without health every member is up again")
    }

    @Test func everyModeDecidesWithTheHealthView() throws {
        let sidecar = HealthSidecar()
        let (chosen, other) = try members(sidecar)
        sidecar.setDown([try #require(HealthTestSnapshot.members.firstIndex(of: chosen))])
        let expected = other + "/v2/x"
        let forward = try sidecar.connect(mode: .forwardAuth).request("/", headers: [client, "X-Forwarded-Uri: /v2/x"])
        #expect(forward.status == 302 && forward.header("location") == expected)
        let auth = try sidecar.connect(mode: .authRequest).request("/", headers: [client, "X-Original-URI: /v2/x"])
        #expect(auth.status == 401 && auth.header("location") == expected)
        let standalone = try sidecar.connect(mode: .standalone).request("/v2/x", headers: [client])
        #expect(standalone.status == 302 && standalone.header("location") == expected)
        let explain = try sidecar.connect().request("/explain?client=192.0.2.10&target=%2Fv2%2Fx")
        #expect(explain.body.contains("location=\(expected)") && explain.body.contains("skipped=\(chosen)(aws-use1):down"))
    }

    @Test func explainJSONHasThePoolTheStepAndTheSkippedMembers() throws {
        let sidecar = HealthSidecar()
        sidecar.setDown([0, 1])
        let explain = try sidecar.connect().request("/explain?client=192.0.2.10&target=%2Fv2%2Fx&format=json")
        #expect(explain.status == 200 && explain.header("content-type") == "application/json")
        #expect(explain.body.hasPrefix("{\"action\":\"redirect\",\"status\":302,\"location\":\"https://registry.aws.test/v2/x\","))
        #expect(explain.body.contains(",\"pool\":\"\",\"step\":\"provider\",\"skipped\":[\"https://"))
        #expect(explain.body.contains("(aws-use1):down\""))
        #expect(explain.body.hasSuffix(",\"client\":\"192.0.2.10\"}\n"))
    }

    @Test func metricsShowMembersStepsAndTheStateAge() throws {
        let sidecar = HealthSidecar()
        var metrics = try sidecar.metrics()
        #expect(metrics.contains("redirector_member_up{pool=\"aws-use1\",member=\"https://a.use1.test\"} 1.0\n"))
        #expect(metrics.contains("redirector_health_state_age_seconds -1.0\n"))
        sidecar.setDown([0], writtenAt: unixMilliseconds() - 2000)
        _ = try sidecar.connect().request("/ext_authz/v2/x", headers: [client])
        metrics = try sidecar.metrics()
        #expect(metrics.contains("redirector_member_up{pool=\"aws-use1\",member=\"https://a.use1.test\"} 0.0\n"))
        #expect(metrics.contains("redirector_member_up{pool=\"aws-use1\",member=\"https://b.use1.test\"} 1.0\n"))
        #expect(metrics.contains("redirector_member_up{pool=\"-\",member=\"https://registry.aws.test\"} 1.0\n"))
        #expect(metrics.contains("redirector_decisions_by_step_total{step=\"primary\"} 1\n"))
        let age = metrics.split(separator: "\n").first { $0.hasPrefix("redirector_health_state_age_seconds ") }
        let seconds = try #require(age.flatMap { Double($0.split(separator: " ")[1]) })
        #expect(seconds >= 2 && seconds < 60)
        let ready = try sidecar.connect().request("/readyz")
        #expect(ready.body.contains("\"health\":{\"members\":3,\"down\":1,"))
    }

    @Test func probeMetricsCountDurationsAndFailures() throws {
        let sidecar = HealthSidecar()
        let plan = sidecar.store.current!.probePlan
        let target = try #require(plan.targets.first)
        sidecar.store.metrics.health.probed(target, outcome: ProbeOutcome(failure: .timeout, latency: .milliseconds(30), error: "x"))
        sidecar.store.metrics.health.probed(target, outcome: ProbeOutcome(failure: .none, status: 200, latency: .milliseconds(3)))
        let labels = "pool=\"aws-use1\",member=\"https://a.use1.test\""
        let metrics = try sidecar.metrics()
        #expect(metrics.contains("redirector_probe_failures_total{\(labels),reason=\"timeout\"} 1\n"))
        #expect(metrics.contains("redirector_probe_failures_total{\(labels),reason=\"connect\"} 0\n"))
        #expect(metrics.contains("redirector_probe_duration_seconds_count{\(labels)} 2\n"))
    }
}

@Suite struct HealthMonitorTests {
    @Test func aStateFileIsUsedAndEveryUnusableFileMeansAllUp() throws {
        let sidecar = HealthSidecar()
        let path = sidecar.directory + "/health.state"
        let monitor = HealthMonitor(store: sidecar.store, source: .file(path), logger: quietLogger())
        let fingerprint = sidecar.snapshot.healthFingerprint
        let now = unixMilliseconds()

        monitor.poll(now: now)
        #expect(sidecar.store.serving?.health == nil)
        #expect(try sidecar.metrics().contains("redirector_health_state_errors_total{reason=\"missing\"} 1\n"))
        monitor.poll(now: now)
        #expect(try sidecar.metrics().contains("redirector_health_state_errors_total{reason=\"missing\"} 1\n"),
                "an unchanged file is not read again")

        try HealthStateFile.write(HealthTestSnapshot.state(for: sidecar.snapshot, down: [0, 1], writtenAt: now), fingerprint: fingerprint, to: path)
        monitor.poll(now: now)
        #expect(sidecar.store.serving?.health?.downCount == 2)
        #expect(try sidecar.connect().request("/ext_authz/v2/x", headers: [client]).header("location")
                == HealthTestSnapshot.providerRegistry + "/v2/x")

        var corrupt = HealthTestSnapshot.state(for: sidecar.snapshot, down: [0], writtenAt: now).encode(fingerprint: fingerprint)
        corrupt[60] ^= 0xff
        TestSnapshot.write(corrupt, to: path)
        monitor.poll(now: now)
        #expect(sidecar.store.serving?.health == nil, "a corrupt file: decisions go without health")
        #expect(try sidecar.metrics().contains("redirector_health_state_errors_total{reason=\"corrupt\"} 1\n"))

        try HealthStateFile.write(HealthTestSnapshot.state(for: sidecar.snapshot, down: [0], writtenAt: now),
                                  fingerprint: fingerprint &+ 1, to: path)
        monitor.poll(now: now)
        #expect(sidecar.store.serving?.health == nil)
        #expect(try sidecar.metrics().contains("redirector_health_state_errors_total{reason=\"other_snapshot\"} 1\n"))

        try HealthStateFile.write(HealthTestSnapshot.state(for: sidecar.snapshot, down: [0], writtenAt: now - 60_000),
                                  fingerprint: fingerprint, to: path)
        monitor.poll(now: now)
        #expect(sidecar.store.serving?.health == nil)
        #expect(try sidecar.metrics().contains("redirector_health_state_errors_total{reason=\"stale\"} 1\n"))
    }

    @Test func aStateThatGoesStaleWhileHeldIsDropped() throws {
        let sidecar = HealthSidecar()
        let path = sidecar.directory + "/health.state"
        let monitor = HealthMonitor(store: sidecar.store, source: .file(path), logger: quietLogger())
        let now = unixMilliseconds()
        try HealthStateFile.write(HealthTestSnapshot.state(for: sidecar.snapshot, down: [0], writtenAt: now),
                                  fingerprint: sidecar.snapshot.healthFingerprint, to: path)
        monitor.poll(now: now)
        #expect(sidecar.store.serving?.health?.downCount == 1)
        monitor.poll(now: now + 5_000)
        #expect(sidecar.store.serving?.health != nil, "still fresh")
        monitor.poll(now: now + 10_001)
        #expect(sidecar.store.serving?.health == nil)
        #expect(try sidecar.metrics().contains("redirector_health_state_errors_total{reason=\"stale\"} 1\n"))
        #expect(try sidecar.metrics().contains("redirector_member_up{pool=\"aws-use1\",member=\"https://a.use1.test\"} 1.0\n"))
    }

    @Test func proberPublicationsForOtherPoolsAreIgnored() throws {
        let sidecar = HealthSidecar()
        let monitor = HealthMonitor(store: sidecar.store, source: .prober, logger: quietLogger())
        let state = HealthTestSnapshot.state(for: sidecar.snapshot, down: [0], writtenAt: unixMilliseconds())
        monitor.accept(HealthPublication(state: state, fingerprint: sidecar.snapshot.healthFingerprint &+ 1))
        #expect(sidecar.store.serving?.health == nil)
        monitor.accept(HealthPublication(state: state, fingerprint: sidecar.snapshot.healthFingerprint))
        #expect(sidecar.store.serving?.health === state)
    }

    @Test func aReloadWithTheSamePoolsKeepsTheStateAndOtherPoolsDropIt() throws {
        let sidecar = HealthSidecar()
        sidecar.setDown([0])
        TestSnapshot.write(HealthTestSnapshot.bytes(createdAt: 1_700_000_100), to: sidecar.store.path)
        #expect(sidecar.store.reload(reason: "test"))
        #expect(sidecar.store.serving?.health?.downCount == 1, "a data refresh keeps the health state")
        TestSnapshot.write(HealthTestSnapshot.bytes(checks: ["http://other/a", "http://other/b"]), to: sidecar.store.path)
        #expect(sidecar.store.reload(reason: "test"))
        #expect(sidecar.store.serving?.health == nil, "other checks: the state is for other pools")
    }
}
