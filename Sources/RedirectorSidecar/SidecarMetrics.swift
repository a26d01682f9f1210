import Prometheus
import RedirectorCore
import Synchronization

/// The outcome label of a decision.
public enum DecisionOutcome: Int, Sendable, CaseIterable {
    /// The proxy serves the request as usual (ext_authz/forward-auth 200, standalone pass answer).
    case pass = 0
    /// A redirect to a mirror.
    case redirect = 1
    /// A response defined by a route (404, 405, 200 for `/v2/`, …).
    case respond = 2
    /// The check request lacked what it needs (for example forward-auth without `X-Forwarded-Uri`).
    case invalid = 3
    /// No snapshot was loaded.
    case unavailable = 4

    /// The label value.
    public var label: String {
        switch self {
        case .pass: return "pass"
        case .redirect: return "redirect"
        case .respond: return "respond"
        case .invalid: return "invalid"
        case .unavailable: return "unavailable"
        }
    }
}

/// The sidecar's Prometheus metrics.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `redirector_decisions_total` | counter | `provider` (`none` when unmatched), `outcome` |
/// | `redirector_requests_total` | counter | `endpoint` |
/// | `redirector_decision_duration_seconds` | histogram | — |
/// | `redirector_request_timeouts_total` | counter | — |
/// | `redirector_snapshot_age_seconds` | gauge | — (now − the snapshot's creation time) |
/// | `redirector_snapshot_created_timestamp_seconds` | gauge | — |
/// | `redirector_source_age_seconds` | gauge | `source`, `format` (now − the source's publisher date, else its fetch time, else the snapshot's compile time; see ``SourceProvenance/dataTime(compiledAt:)``) |
/// | `redirector_snapshot_loaded_timestamp_seconds` | gauge | — |
/// | `redirector_snapshot_prefixes` | gauge | `family` |
/// | `redirector_snapshot_reloads_total` | counter | `result` (`success`, `failure`) |
/// | `redirector_snapshot_reload_failures_total` | counter | — |
/// | `redirector_snapshot_last_reload_success` | gauge | — (1 or 0) |
/// | `redirector_ready` | gauge | — (1 when a snapshot is loaded, every listener is bound and the server is not shutting down) |
///
/// and the health metrics of ``HealthMetrics`` (member up/down, probes, decisions by fallback step,
/// health state age and errors).
public final class SidecarMetrics: Sendable {
    /// The registry every metric lives in.
    public let registry: PrometheusCollectorRegistry
    let duration: DurationHistogram
    let timeouts: Counter
    let reloadSuccesses: Counter
    let reloadFailureResults: Counter
    let reloadFailures: Counter
    let lastReloadSuccess: Gauge
    let snapshotAge: Gauge
    /// One age gauge per source of the serving snapshot, with the time its age is measured from.
    private let sourceAges = Mutex<[(gauge: Gauge, since: Double)]>([])
    let snapshotCreated: Gauge
    let snapshotLoaded: Gauge
    let prefixes4: Gauge
    let prefixes6: Gauge
    let ready: Gauge
    let requestCounters: [Counter]
    let unavailable: Counter
    /// Pool member health, probes, fallback steps and health state files.
    public let health: HealthMetrics
    /// Presence-check metrics.
    public let presence: PresenceMetrics

    /// Histogram buckets of the decision duration.
    public static let durationBuckets: [Duration] = [
        .microseconds(5), .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100),
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
        .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1),
    ]

    /// Creates the metrics in `registry`.
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "redirector", metricName: metric, unitName: unit, helpText: help)
        }
        let reloads = name("snapshot_reloads", "total", "Snapshot reload attempts.")
        let prefixes = name("snapshot_prefixes", "", "Prefixes in the serving snapshot.")
        duration = registry.makeDurationHistogram(
            descriptor: name("decision_duration", "seconds", "Time from a request's head to its answer, for decision endpoints."),
            buckets: Self.durationBuckets)
        timeouts = registry.makeCounter(descriptor: name(
            "request_timeouts", "total", "Requests answered early because their body did not arrive within the request timeout."))
        reloadSuccesses = registry.makeCounter(descriptor: reloads, labels: [("result", "success")])
        reloadFailureResults = registry.makeCounter(descriptor: reloads, labels: [("result", "failure")])
        reloadFailures = registry.makeCounter(descriptor: name(
            "snapshot_reload_failures", "total", "Snapshots rejected on reload (the previous snapshot kept serving)."))
        lastReloadSuccess = registry.makeGauge(descriptor: name(
            "snapshot_last_reload_success", "", "1 when the last reload attempt succeeded, 0 when it failed."))
        snapshotAge = registry.makeGauge(descriptor: name("snapshot_age", "seconds", "Seconds since the serving snapshot was compiled."))
        snapshotCreated = registry.makeGauge(descriptor: name(
            "snapshot_created_timestamp", "seconds", "Unix time the serving snapshot was compiled."))
        snapshotLoaded = registry.makeGauge(descriptor: name(
            "snapshot_loaded_timestamp", "seconds", "Unix time the serving snapshot was loaded."))
        prefixes4 = registry.makeGauge(descriptor: prefixes, labels: [("family", "ipv4")])
        prefixes6 = registry.makeGauge(descriptor: prefixes, labels: [("family", "ipv6")])
        ready = registry.makeGauge(descriptor: name("ready", "", "1 when the sidecar is ready to serve decisions."))
        let requests = name("requests", "total", "Requests by endpoint.")
        requestCounters = Endpoint.allCases.map { registry.makeCounter(descriptor: requests, labels: [("endpoint", $0.label)]) }
        unavailable = registry.makeCounter(
            descriptor: Self.decisions, labels: [("provider", "none"), ("outcome", DecisionOutcome.unavailable.label)])
        lastReloadSuccess.set(to: 1)
        health = HealthMetrics(registry: registry)
        presence = PresenceMetrics(registry: registry)
    }

    /// The decision counters for a snapshot's providers: index `(provider + 1) * outcomes + outcome`.
    func decisionCounters(for snapshot: Snapshot) -> [Counter] {
        var counters: [Counter] = []
        let providers = ["none"] + (0..<snapshot.policy.providers.count).map { snapshot.providerName(Int32($0)) }
        for provider in providers {
            for outcome in DecisionOutcome.allCases {
                counters.append(registry.makeCounter(descriptor: Self.decisions, labels: [("provider", provider), ("outcome", outcome.label)]))
            }
        }
        return counters
    }

    static var decisions: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "redirector", metricName: "decisions", unitName: "total",
                             helpText: "Decisions by matched provider and outcome.")
    }

    /// Counts a request to `endpoint`.
    @inline(__always)
    func count(_ endpoint: Endpoint) {
        requestCounters[endpoint.rawValue].increment()
    }

    /// Records what a snapshot looks like once it serves.
    func snapshotLoaded(_ snapshot: Snapshot, at time: Double) {
        snapshotCreated.set(to: Double(snapshot.createdAt))
        snapshotLoaded.set(to: time)
        prefixes4.set(to: Double(snapshot.prefixCounts.v4))
        prefixes6.set(to: Double(snapshot.prefixCounts.v6))
        let descriptor = MetricNameDescriptor(
            namespace: "redirector", metricName: "source_age", unitName: "seconds",
            helpText: "Seconds since the source's publisher date (else its fetch time, else the snapshot's compile time).")
        sourceAges.withLock { ages in
            // A reload replaces the sources: gauges of sources gone must not linger.
            for (gauge, _) in ages { registry.unregisterGauge(gauge) }
            ages = snapshot.sources.map { source in
                (registry.makeGauge(descriptor: descriptor, labels: [("source", source.name), ("format", source.format)]),
                 Double(source.dataTime(compiledAt: snapshot.createdAt)))
            }
        }
    }

    /// The exposition text, with time-dependent gauges brought up to date.
    func exposition(store: SnapshotStore, ready isReady: Bool, now: Double) -> [UInt8] {
        let serving = store.serving
        if let loaded = serving?.loaded {
            snapshotAge.set(to: max(0, now - Double(loaded.snapshot.createdAt)))
        }
        sourceAges.withLock { ages in
            for (gauge, since) in ages { gauge.set(to: max(0, now - since)) }
        }
        health.updateAge(health: serving?.health, now: now)
        ready.set(to: isReady ? 1 : 0)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8192)
        registry.emit(into: &buffer)
        return buffer
    }
}
