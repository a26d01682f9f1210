import Prometheus
import RedirectorPresence

/// The presence-check metrics of the sidecar (in the ``SidecarMetrics`` registry).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `redirector_presence_checks_total` | counter | `result` (`present`, `absent`, `unknown`): HEADs sent |
/// | `redirector_presence_check_duration_seconds` | histogram | — |
/// | `redirector_presence_cache_lookups_total` | counter | `result` (`hit`, `miss`) |
/// | `redirector_presence_cache_evictions_total` | counter | — |
/// | `redirector_presence_fallbacks_total` | counter | — (decisions sent past a member that lacked the object) |
public final class PresenceMetrics: PresenceObserver, Sendable {
    private let checks: [Counter]
    private let duration: DurationHistogram
    private let hits: Counter
    private let misses: Counter
    private let evictions: Counter
    let fallbacks: Counter

    static let results = ["present", "absent", "unknown"]

    init(registry: PrometheusCollectorRegistry) {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "redirector", metricName: metric, unitName: unit, helpText: help)
        }
        let checked = name("presence_checks", "total", "Presence checks (HEADs) sent to mirrors, by result.")
        checks = Self.results.map { registry.makeCounter(descriptor: checked, labels: [("result", $0)]) }
        duration = registry.makeDurationHistogram(
            descriptor: name("presence_check_duration", "seconds", "Duration of presence checks."), labels: [],
            buckets: HealthMetrics.probeBuckets)
        let lookups = name("presence_cache_lookups", "total", "Presence answers looked up, by hit or miss.")
        hits = registry.makeCounter(descriptor: lookups, labels: [("result", "hit")])
        misses = registry.makeCounter(descriptor: lookups, labels: [("result", "miss")])
        evictions = registry.makeCounter(descriptor: name(
            "presence_cache_evictions", "total", "Presence answers dropped to make room (least recently used first)."))
        fallbacks = registry.makeCounter(descriptor: name(
            "presence_fallbacks", "total", "Decisions sent past a mirror whose presence check did not find the object."))
    }

    /// Counts a HEAD sent (``PresenceObserver``).
    public func checked(_ result: PresenceResult, nanoseconds: UInt64) {
        if let index = Self.results.firstIndex(of: result.label) { checks[index].increment() }
        duration.record(.nanoseconds(Int64(clamping: nanoseconds)))
    }

    /// Counts a cache lookup (``PresenceObserver``).
    public func lookedUp(hit: Bool) {
        (hit ? hits : misses).increment()
    }

    /// Counts an eviction (``PresenceObserver``).
    public func evicted() {
        evictions.increment()
    }
}
