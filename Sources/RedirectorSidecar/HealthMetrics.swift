import Prometheus
import RedirectorCore
import RedirectorHealth
import Synchronization

/// The health metrics of the sidecar (in the ``SidecarMetrics`` registry).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `redirector_member_up` | gauge | `pool`, `member` (1 up or unchecked, 0 down: what decisions use) |
/// | `redirector_probe_duration_seconds` | histogram | `pool`, `member` (with `--probe`) |
/// | `redirector_probe_failures_total` | counter | `pool`, `member`, `reason` (`timeout`, `connect`, `status`, `other`; with `--probe`) |
/// | `redirector_decisions_by_step_total` | counter | `step` (``FallbackStep/name``) |
/// | `redirector_health_state_age_seconds` | gauge | — (now − when the state in use was written; -1 without one) |
/// | `redirector_health_state_errors_total` | counter | `reason` (``HealthStateFileProblem``) |
public final class HealthMetrics: HealthProbeObserver, Sendable {
    let registry: PrometheusCollectorRegistry
    let steps: [Counter]
    let stateErrors: [Counter]
    let stateAge: Gauge
    private let members = Mutex<MemberMetrics?>(nil)

    /// The per-member metrics of one snapshot's pools.
    private struct MemberMetrics {
        var fingerprint: UInt64
        var members: [ProbeMember]
        var up: [Gauge]
        var probes: [Int: (duration: DurationHistogram, failures: [Counter])] = [:]
    }

    /// Histogram buckets of probe durations.
    public static let probeBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// The failure reasons counted (every ``MemberHealth/Failure`` but `none`).
    static let failureReasons = MemberHealth.Failure.allCases.filter { $0 != .none }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        let steps = Self.name("decisions_by_step", "total", "Decisions by the fallback step that gave their target.")
        self.steps = FallbackStep.allCases.sorted { $0.rawValue < $1.rawValue }
            .map { registry.makeCounter(descriptor: steps, labels: [("step", $0.name)]) }
        let errors = Self.name("health_state_errors", "total",
                               "Health states not used (decisions went without health), by reason.")
        stateErrors = HealthStateFileProblem.allCases.map { registry.makeCounter(descriptor: errors, labels: [("reason", $0.rawValue)]) }
        stateAge = registry.makeGauge(descriptor: Self.name(
            "health_state_age", "seconds", "Seconds since the health state decisions use was written; -1 when there is none."))
        stateAge.set(to: -1)
    }

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "redirector", metricName: metric, unitName: unit, helpText: help)
    }

    /// Counts one decision by its step.
    @inline(__always)
    func count(step: FallbackStep) {
        let index = Int(step.rawValue)
        if index >= 0 && index < steps.count { steps[index].increment() }
    }

    /// Counts a health state that was not used.
    func countStateError(_ problem: HealthStateFileProblem) {
        if let index = HealthStateFileProblem.allCases.firstIndex(of: problem) { stateErrors[index].increment() }
    }

    /// Brings `redirector_health_state_age_seconds` up to date at `now` (Unix seconds).
    func updateAge(health: HealthState?, now: Double) {
        stateAge.set(to: health.map { max(0, now - Double($0.writtenAt) / 1000) } ?? -1)
    }

    /// Shows the members of `plan` (replacing another plan's series) as up or down per `records`
    /// (nil: every member up, as decisions without health see them).
    func show(plan: ProbePlan, records: [MemberHealth]?) {
        members.withLock { current in
            if current?.fingerprint != plan.fingerprint || current?.members != plan.members {
                if let old = current {
                    old.up.forEach(registry.unregisterGauge)
                    for probe in old.probes.values {
                        registry.unregisterDurationHistogram(probe.duration)
                        probe.failures.forEach(registry.unregisterCounter)
                    }
                }
                let descriptor = Self.name("member_up", "", "1 when decisions treat the pool member as up (or it is unchecked), 0 when down.")
                current = MemberMetrics(
                    fingerprint: plan.fingerprint, members: plan.members,
                    up: plan.members.map { registry.makeGauge(descriptor: descriptor, labels: [("pool", $0.pool), ("member", $0.member)]) })
            }
            guard let current else { return }
            for (slot, gauge) in current.up.enumerated() {
                let down = records.map { slot < $0.count && $0[slot].state == .down } ?? false
                gauge.set(to: down ? 0 : 1)
            }
        }
    }

    /// Records a probe of the prober running in process (``HealthProbeObserver``).
    public func probed(_ target: ProbeTarget, outcome: ProbeOutcome) {
        members.withLock { current in
            guard var metrics = current, target.slot < metrics.members.count,
                  metrics.members[target.slot] == ProbeMember(slot: target.slot, pool: target.pool, member: target.member)
            else { return }  // a probe of pools no longer served
            let probe: (duration: DurationHistogram, failures: [Counter])
            if let existing = metrics.probes[target.slot] {
                probe = existing
            } else {
                let labels = [("pool", target.pool), ("member", target.member)]
                let failures = Self.name("probe_failures", "total", "Failed health probes of a pool member, by reason.")
                probe = (registry.makeDurationHistogram(
                            descriptor: Self.name("probe_duration", "seconds", "Duration of health probes of a pool member."),
                            labels: labels, buckets: Self.probeBuckets),
                         Self.failureReasons.map { registry.makeCounter(descriptor: failures, labels: labels + [("reason", $0.name)]) })
                metrics.probes[target.slot] = probe
                current = metrics
            }
            probe.duration.record(outcome.latency)
            if let index = Self.failureReasons.firstIndex(of: outcome.failure) { probe.failures[index].increment() }
        }
    }
}
