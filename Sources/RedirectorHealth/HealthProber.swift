import Logging
import RedirectorCore
import Synchronization

/// A health state as a prober published it, with the pools it is valid for.
public struct HealthPublication: Sendable {
    /// The state.
    public let state: HealthState
    /// ``ProbePlan/fingerprint`` of the pools it describes: use it only with a snapshot whose
    /// ``Snapshot/healthFingerprint`` is the same.
    public let fingerprint: UInt64

    /// A publication of `state` for the pools with `fingerprint`.
    public init(state: HealthState, fingerprint: UInt64) {
        self.state = state
        self.fingerprint = fingerprint
    }
}

/// Sees every probe a prober makes (the sidecar's probe metrics).
public protocol HealthProbeObserver: Sendable {
    /// `target` was probed with `outcome`.
    func probed(_ target: ProbeTarget, outcome: ProbeOutcome)
}

/// Probes every member of one ``ProbePlan`` that has a health check and publishes the resulting
/// ``HealthState``: in memory to subscribers and, optionally, to a state file.
///
/// Checked members start up (since the prober's creation), unchecked ones ``MemberHealth/State/unchecked``;
/// ``MemberTracker`` applies rise and fall. A state is published at once when a member changes state
/// and at least every ``ProbePlan/heartbeat`` otherwise, so readers can tell a live prober from a
/// dead one (``ProbePlan/staleAfter``). Probe failures of every kind are outcomes, never errors:
/// a prober that reaches nothing keeps probing and publishing.
public final class HealthProber: Sendable {
    /// What is probed.
    public let plan: ProbePlan
    /// Where each state is also written, nil for memory only.
    public let stateFile: String?
    let client: any HealthProbeClient
    let logger: Logger
    let observer: (any HealthProbeObserver)?
    let now: @Sendable () -> Int64
    private let trackers: Mutex<[MemberTracker]>
    private let baseRecords: [MemberHealth]
    private let publisher: Mutex<Publisher>

    private struct Publisher {
        var subscribers: [@Sendable (HealthPublication) -> Void] = []
        var latest: HealthState
        var writeError: String?
    }

    /// A prober for `plan`, probing through `client`.
    ///
    /// - Parameters:
    ///   - stateFile: also write every state to this file (atomically), nil for none.
    ///   - observer: told of every probe.
    ///   - now: the wall clock, Unix milliseconds (tests pass their own).
    public init(plan: ProbePlan, client: any HealthProbeClient, stateFile: String? = nil, logger: Logger,
                observer: (any HealthProbeObserver)? = nil, now: @escaping @Sendable () -> Int64 = unixMilliseconds) {
        self.plan = plan
        self.client = client
        self.stateFile = stateFile
        self.logger = logger
        self.observer = observer
        self.now = now
        let start = now()
        var records = [MemberHealth](repeating: MemberHealth(state: .unchecked, since: start), count: plan.memberCount)
        let trackers = plan.targets.map { MemberTracker(rise: $0.rise, fall: $0.fall, now: start) }
        for (target, tracker) in zip(plan.targets, trackers) where target.slot < records.count {
            records[target.slot] = tracker.record
        }
        baseRecords = records
        self.trackers = Mutex(trackers)
        publisher = Mutex(Publisher(latest: HealthState(records: records, writtenAt: start,
                                                        staleAfter: plan.staleAfter.milliseconds)))
    }

    /// The state last published (before the first: every checked member up).
    public var current: HealthState {
        publisher.withLock { $0.latest }
    }

    /// Every member's record as of the latest probe, in slot order (published or not yet).
    public var records: [MemberHealth] {
        var records = baseRecords
        let tracked = trackers.withLock { $0.map(\.record) }
        for (target, record) in zip(plan.targets, tracked) where target.slot < records.count {
            records[target.slot] = record
        }
        return records
    }

    /// Calls `handler` with every state published from now on (on the publishing task; keep it short).
    public func subscribe(_ handler: @escaping @Sendable (HealthPublication) -> Void) {
        publisher.withLock { $0.subscribers.append(handler) }
    }

    /// Probes every target on its interval (with up to 10 % jitter) and publishes on every change
    /// and heartbeat, until the task is cancelled.
    public func run() async {
        publish()
        await withTaskGroup(of: Void.self) { tasks in
            for index in plan.targets.indices {
                tasks.addTask { await self.probeLoop(index) }
            }
            tasks.addTask { await self.heartbeatLoop() }
            await tasks.waitForAll()
        }
    }

    /// Probes every target once, concurrently (a state changed by it is published at once).
    ///
    /// - Returns: the transitions, in target order.
    @discardableResult
    public func probeAll() async -> [HealthTransition] {
        await withTaskGroup(of: (Int, HealthTransition?).self) { tasks in
            for index in plan.targets.indices {
                tasks.addTask { (index, await self.probe(target: index)) }
            }
            var transitions: [(Int, HealthTransition)] = []
            for await (index, transition) in tasks {
                if let transition { transitions.append((index, transition)) }
            }
            return transitions.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    /// Probes target `index` of ``ProbePlan/targets`` once and applies the outcome.
    ///
    /// - Returns: the transition when the member changed state (logged and published), nil otherwise
    ///   (also when the task was cancelled during the probe: its outcome is dropped).
    @discardableResult
    public func probe(target index: Int) async -> HealthTransition? {
        guard plan.targets.indices.contains(index) else { return nil }
        let target = plan.targets[index]
        let clock = ContinuousClock()
        let started = clock.now
        let response = await client.probe(target)
        let latency = clock.now - started
        guard !Task.isCancelled else { return nil }
        let outcome: ProbeOutcome
        switch response {
        case .status(let status) where target.accepts(status: status):
            outcome = ProbeOutcome(failure: .none, status: status, latency: latency)
        case .status(let status):
            outcome = ProbeOutcome(failure: .status, status: status, latency: latency,
                                   error: "status \(status) is not an expected status")
        case .failed(let failure, let error):
            outcome = ProbeOutcome(failure: failure == .none ? .other : failure, latency: latency, error: error)
        }
        observer?.probed(target, outcome: outcome)
        let time = now()
        guard let transition = trackers.withLock({ $0[index].apply(outcome, now: time) }) else { return nil }
        logger.log(level: transition.to == .down ? .warning : .notice, "health change", metadata: [
            "member": "\(target.member)", "slot": "\(target.slot)", "pool": "\(target.pool)",
            "from": "\(transition.from.name)", "to": "\(transition.to.name)", "reason": "\(outcome.failure.name)",
            "status": "\(outcome.status)", "error": "\(outcome.error)", "check": "\(target.method) \(target.url)",
            "latency_ms": "\(outcome.latency.microseconds / 1000)",
        ])
        publish()
        return transition
    }

    /// Publishes the current records: to subscribers, then to the state file.
    public func publish() {
        publisher.withLock { publisher in
            let state = HealthState(records: records, writtenAt: now(), staleAfter: plan.staleAfter.milliseconds)
            publisher.latest = state
            let publication = HealthPublication(state: state, fingerprint: plan.fingerprint)
            for subscriber in publisher.subscribers { subscriber(publication) }
            guard let stateFile else { return }
            do {
                try HealthStateFile.write(state, fingerprint: plan.fingerprint, to: stateFile)
                if publisher.writeError != nil {
                    logger.notice("health state file written again", metadata: ["path": "\(stateFile)"])
                    publisher.writeError = nil
                }
            } catch {
                let message = "\(error)"
                if publisher.writeError != message {
                    logger.error("cannot write the health state file", metadata: ["path": "\(stateFile)", "error": "\(message)"])
                    publisher.writeError = message
                }
            }
        }
    }

    private func probeLoop(_ index: Int) async {
        let interval = plan.targets[index].interval
        // Spread the first probes over a tenth of the interval so members are not all probed at once.
        do { try await Task.sleep(for: interval * Double.random(in: 0...0.1)) } catch { return }
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let started = clock.now
            await probe(target: index)
            do {
                try await Task.sleep(until: started + interval * Double.random(in: 0.9...1.1), clock: clock)
            } catch {
                return
            }
        }
    }

    private func heartbeatLoop() async {
        let heartbeat = plan.heartbeat
        while !Task.isCancelled {
            do { try await Task.sleep(for: heartbeat) } catch { return }
            publish()
        }
    }
}
