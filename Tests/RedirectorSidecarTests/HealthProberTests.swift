import Glibc
import RedirectorCore
@testable import RedirectorHealth
import RedirectorSidecar
import Synchronization
import Testing

/// A probe client that answers from a script: per check URL, the answers still to give (the last
/// one repeats), and every probe it was asked for.
final class ScriptedProbeClient: HealthProbeClient {
    private let state = Mutex<(script: [String: [ProbeResponse]], probes: [String])>(([:], []))

    init(_ script: [String: [ProbeResponse]] = [:]) {
        state.withLock { $0.script = script }
    }

    /// Makes `url` answer `responses` from now on.
    func answer(_ url: String, _ responses: ProbeResponse...) {
        state.withLock { $0.script[url] = responses }
    }

    /// The URLs probed so far, in order.
    var probes: [String] { state.withLock { $0.probes } }

    func probe(_ target: ProbeTarget) async -> ProbeResponse {
        state.withLock { state in
            state.probes.append(target.url)
            guard var answers = state.script[target.url], let first = answers.first else {
                return .failed(.connect, "connection refused (no script)")
            }
            if answers.count > 1 {
                answers.removeFirst()
                state.script[target.url] = answers
            }
            return first
        }
    }

    func shutdown() async {}
}

/// A clock tests move by hand, Unix milliseconds.
final class ManualClock: Sendable {
    private let value: Atomic<Int64>

    init(_ start: Int64 = 1_800_000_000_000) { value = Atomic(start) }

    var now: Int64 { value.load(ordering: .relaxed) }

    func advance(milliseconds: Int64) { value.add(milliseconds, ordering: .relaxed) }
}

@Suite struct MemberTrackerTests {
    private let ok = ProbeOutcome(failure: .none, status: 200, latency: .milliseconds(3))
    private let timeout = ProbeOutcome(failure: .timeout, latency: .milliseconds(500), error: "deadline exceeded")

    @Test func startsUpWithoutAFailure() {
        let tracker = MemberTracker(rise: 2, fall: 3, now: 1000)
        #expect(tracker.record == MemberHealth(state: .up, failure: .none, since: 1000))
    }

    @Test func fallFailuresInARowTakeItDownAndRiseSuccessesBringItBack() {
        var tracker = MemberTracker(rise: 2, fall: 3, now: 1000)
        #expect(tracker.apply(timeout, now: 2000) == nil)
        #expect(tracker.apply(timeout, now: 3000) == nil)
        #expect(tracker.record.state == .up && tracker.record.failure == .timeout, "the record shows the failure before the state changes")
        let down = tracker.apply(timeout, now: 4000)
        #expect(down?.from == .up && down?.to == .down)
        #expect(tracker.record.state == .down && tracker.record.since == 4000 && tracker.record.error == "deadline exceeded")
        #expect(tracker.record.latencyMicroseconds == 500_000)
        #expect(tracker.apply(ok, now: 5000) == nil, "one success is not enough with rise 2")
        #expect(tracker.record.state == .down && tracker.record.failure == .none && tracker.record.error.isEmpty)
        let up = tracker.apply(ok, now: 6000)
        #expect(up?.from == .down && up?.to == .up)
        #expect(tracker.record == MemberHealth(state: .up, failure: .none, status: 200, latencyMicroseconds: 3000, since: 6000))
    }

    @Test func aSuccessResetsTheFailureCountAndAFailureTheSuccessCount() {
        var tracker = MemberTracker(rise: 2, fall: 2, now: 0)
        _ = tracker.apply(timeout, now: 1)
        _ = tracker.apply(ok, now: 2)
        #expect(tracker.apply(timeout, now: 3) == nil, "failures must be consecutive")
        #expect(tracker.apply(timeout, now: 4)?.to == .down)
        _ = tracker.apply(ok, now: 5)
        _ = tracker.apply(timeout, now: 6)
        #expect(tracker.apply(ok, now: 7) == nil, "successes must be consecutive")
        #expect(tracker.apply(ok, now: 8)?.to == .up)
    }

    @Test func riseAndFallOfZeroMeanOne() {
        var tracker = MemberTracker(rise: 0, fall: 0, now: 0)
        #expect(tracker.apply(timeout, now: 1)?.to == .down)
        #expect(tracker.apply(ok, now: 2)?.to == .up)
    }

    @Test func longErrorsAreCutAtACharacterBoundary() {
        var tracker = MemberTracker(rise: 1, fall: 1, now: 0)
        _ = tracker.apply(ProbeOutcome(failure: .other, error: String(repeating: "é", count: 150)), now: 1)
        #expect(tracker.record.error.utf8.count == 200 && tracker.record.error.allSatisfy { $0 == "é" })
    }
}

@Suite struct ProbePlanTests {
    @Test func planHasEveryMemberAndTheCheckedOnesWithTheirChecks() throws {
        let snapshot = try HealthTestSnapshot.make(checks: ["http://h/a", "http://h/b"], intervalMilliseconds: 4000,
                                                   timeoutMilliseconds: 700, rise: 2, fall: 3)
        let plan = ProbePlan(snapshot: snapshot)
        #expect(plan.fingerprint == snapshot.healthFingerprint)
        #expect(plan.members == [
            ProbeMember(slot: 0, pool: "aws-use1", member: "https://a.use1.test"),
            ProbeMember(slot: 1, pool: "aws-use1", member: "https://b.use1.test"),
            ProbeMember(slot: 2, pool: "-", member: "https://registry.aws.test"),
        ])
        #expect(plan.targets.map(\.url) == ["http://h/a", "http://h/b"])
        let first = try #require(plan.targets.first)
        #expect(first.method == "GET" && first.interval == .seconds(4) && first.timeout == .milliseconds(700))
        #expect(first.rise == 2 && first.fall == 3 && first.accepts(status: 204) && !first.accepts(status: 503))
        #expect(plan.heartbeat == .seconds(2), "half the shortest interval")
        #expect(plan.staleAfter == .seconds(12), "three times the longest interval")
    }

    @Test func cadenceHasFloors() throws {
        let plan = ProbePlan(snapshot: try HealthTestSnapshot.make(intervalMilliseconds: 500))
        #expect(plan.heartbeat == .seconds(1))
        #expect(plan.staleAfter == .seconds(10))
        let none = ProbePlan(snapshot: try TestSnapshot.make())
        #expect(none.targets.isEmpty && none.memberCount > 0 && none.heartbeat == .seconds(1) && none.staleAfter == .seconds(10))
    }
}

@Suite struct HealthProberTests {
    private let checkA = "http://127.0.0.1:1/a"
    private let checkB = "http://127.0.0.1:1/b"

    private func prober(client: ScriptedProbeClient, clock: ManualClock, stateFile: String? = nil) throws -> (HealthProber, Snapshot) {
        let snapshot = try HealthTestSnapshot.make(checks: [checkA, checkB], rise: 2, fall: 3)
        let prober = HealthProber(plan: ProbePlan(snapshot: snapshot), client: client, stateFile: stateFile,
                                  logger: quietLogger(), now: { clock.now })
        return (prober, snapshot)
    }

    @Test func startsWithCheckedMembersUpAndOthersUnchecked() throws {
        let clock = ManualClock()
        let (prober, _) = try prober(client: ScriptedProbeClient(), clock: clock)
        let state = prober.current
        #expect(state.records.map(\.state) == [.up, .up, .unchecked])
        #expect(state.records.allSatisfy { $0.since == clock.now && $0.failure == .none })
        #expect(state.downCount == 0 && !state.view.isDown(0) && !state.view.isDown(1))
        #expect(state.staleAfter == 10_000)
    }

    @Test func failuresTakeAMemberDownAfterFallAndSuccessesBringItUpAfterRise() async throws {
        let clock = ManualClock()
        let client = ScriptedProbeClient()
        client.answer(checkA, .status(503))
        client.answer(checkB, .status(200))
        let (prober, _) = try prober(client: client, clock: clock)
        let published = Mutex<[HealthState]>([])
        prober.subscribe { publication in published.withLock { $0.append(publication.state) } }

        for round in 1...2 {
            clock.advance(milliseconds: 1000)
            #expect(await prober.probeAll().isEmpty, "round \(round): fall is 3")
        }
        #expect(published.withLock { $0.isEmpty }, "nothing changed: nothing published outside the heartbeat")
        clock.advance(milliseconds: 1000)
        let down = await prober.probeAll()
        #expect(down.count == 1 && down.first?.from == .up && down.first?.to == .down)
        let state = prober.current
        #expect(state.records[0].state == .down && state.records[0].failure == .status && state.records[0].status == 503)
        #expect(state.records[0].since == clock.now && state.records[1].state == .up)
        #expect(state.view.isDown(0) && !state.view.isDown(1))
        #expect(published.withLock { $0.count } == 1, "a change is published at once")

        client.answer(checkA, .status(200))
        clock.advance(milliseconds: 1000)
        #expect(await prober.probeAll().isEmpty, "rise is 2")
        clock.advance(milliseconds: 1000)
        #expect(await prober.probeAll().first?.to == .up)
        #expect(prober.current.records[0] == MemberHealth(state: .up, status: 200, latencyMicroseconds: prober.current.records[0].latencyMicroseconds,
                                                          since: clock.now))
        #expect(published.withLock { $0.count } == 2)
    }

    @Test func everyKindOfFailureCountsAndNothingStopsTheProber() async throws {
        let clock = ManualClock()
        let client = ScriptedProbeClient()
        client.answer(checkA, .failed(.timeout, "deadline exceeded"), .failed(.connect, "refused"), .failed(.other, "tls"))
        client.answer(checkB, .failed(.none, "a client that reports no reason"))
        let (prober, _) = try prober(client: client, clock: clock)
        await prober.probeAll()
        await prober.probeAll()
        #expect(prober.records[0].failure == .connect && prober.records[1].failure == .other)
        #expect(prober.records[0].state == .up && prober.current.records[0].failure == .none,
                "a probe that changes no state is published with the next heartbeat")
        let transitions = await prober.probeAll()
        #expect(transitions.map(\.to) == [.down, .down])
        #expect(prober.current.records[0].failure == .other && prober.current.records[0].error == "tls")
        #expect(client.probes.count == 6)
    }

    @Test func publishesTheStateFileThatDecodesForTheSnapshot() async throws {
        let clock = ManualClock(unixMilliseconds())
        let client = ScriptedProbeClient([checkA: [.status(200)], checkB: [.failed(.timeout, "deadline exceeded")]])
        let path = TestSnapshot.temporaryDirectory() + "/health.state"
        let (prober, snapshot) = try prober(client: client, clock: clock, stateFile: path)
        prober.publish()
        let first = try HealthStateFile.read(path: path, fingerprint: snapshot.healthFingerprint,
                                             memberCount: snapshot.policy.memberCount, now: clock.now)
        #expect(first.records.map(\.state) == [.up, .up, .unchecked])
        for _ in 1...3 { await prober.probeAll() }
        let after = try HealthStateFile.read(path: path, fingerprint: snapshot.healthFingerprint,
                                             memberCount: snapshot.policy.memberCount, now: clock.now)
        #expect(after.records.map(\.state) == [.up, .down, .unchecked])
        #expect(after.records[1].failure == .timeout && after.records[1].error == "deadline exceeded")
        #expect(after.staleAfter == 10_000)
        #expect(FileIdentity.of(path: path + ".tmp-\(getpid())") == nil, "the temporary file was renamed")
        #expect(throws: HealthStateFileError.self) {
            try HealthStateFile.read(path: path, fingerprint: snapshot.healthFingerprint &+ 1,
                                     memberCount: snapshot.policy.memberCount, now: clock.now)
        }
    }

    @Test func runProbesOnTheIntervalAndPublishesUntilCancelled() async throws {
        let client = ScriptedProbeClient()
        client.answer("http://h/a", .failed(.connect, "refused"))
        client.answer("http://h/b", .status(200))
        let snapshot = try HealthTestSnapshot.make(checks: ["http://h/a", "http://h/b"], intervalMilliseconds: 20, rise: 1, fall: 2)
        let prober = HealthProber(plan: ProbePlan(snapshot: snapshot), client: client, logger: quietLogger())
        let task = Task { await prober.run() }
        defer { task.cancel() }
        let clock = ContinuousClock()
        // A generous bound: the loop ends as soon as the member is down; the bound only stops a
        // broken prober from hanging the run (under a parallel `swift test` on two cores the
        // cooperative pool can be starved for seconds).
        let deadline = clock.now + .seconds(120)
        while prober.current.records[0].state != .down && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(prober.current.records[0].state == .down && prober.current.records[1].state == .up)
        task.cancel()
        await task.value
        let probes = client.probes.count
        try await Task.sleep(for: .milliseconds(60))
        #expect(client.probes.count == probes, "cancelled: no more probes")
    }
}

@Suite struct HealthStateFileTests {
    private func problem(_ body: () throws -> Void) -> HealthStateFileProblem? {
        do {
            try body()
            return nil
        } catch let error as HealthStateFileError {
            return error.problem
        } catch {
            return nil
        }
    }

    @Test func everyUnusableFileHasItsReason() throws {
        let snapshot = try HealthTestSnapshot.make()
        let path = TestSnapshot.temporaryDirectory() + "/health.state"
        let now = unixMilliseconds()
        let fingerprint = snapshot.healthFingerprint
        func read() throws { _ = try HealthStateFile.read(path: path, fingerprint: fingerprint, memberCount: 3, now: now) }
        func write(writtenAt: Int64, fingerprint: UInt64 = fingerprint, change: (inout [UInt8]) -> Void = { _ in }) {
            var bytes = HealthTestSnapshot.state(for: snapshot, down: [1], writtenAt: writtenAt).encode(fingerprint: fingerprint)
            change(&bytes)
            TestSnapshot.write(bytes, to: path)
        }
        #expect(problem(read) == .missing)
        write(writtenAt: now)
        #expect(problem(read) == nil)
        write(writtenAt: now) { $0[8] = 2 }
        #expect(problem(read) == .version)
        write(writtenAt: now) { $0[0] = 0 }
        #expect(problem(read) == .corrupt)
        write(writtenAt: now) { $0.removeLast(3) }
        #expect(problem(read) == .corrupt)
        write(writtenAt: now, fingerprint: fingerprint &+ 1)
        #expect(problem(read) == .otherSnapshot)
        write(writtenAt: now - 11_000)
        #expect(problem(read) == .stale)
        write(writtenAt: now + 120_000)
        #expect(problem(read) == .future)
    }
}

@Suite struct HealthProbeServiceTests {
    @Test func newPoolsRestartTheProberAndADataRefreshDoesNot() async throws {
        let first = try HealthTestSnapshot.make(checks: ["http://h/a", "http://h/b"])
        let refreshed = try Snapshot(bytes: HealthTestSnapshot.bytes(checks: ["http://h/a", "http://h/b"], createdAt: 1_700_000_500))
        let other = try HealthTestSnapshot.make(checks: ["http://h/c", "http://h/d"])
        let current = Mutex<Snapshot?>(nil)
        let plans = Mutex<[UInt64]>([])
        let published = Mutex<Set<UInt64>>([])
        let service = HealthProbeService(
            snapshot: { current.withLock { $0 } }, stateFile: nil, logger: quietLogger(), pollInterval: .milliseconds(5),
            makeClient: { ScriptedProbeClient() },
            onPlan: { plan in plans.withLock { $0.append(plan.fingerprint) } },
            onPublish: { publication in _ = published.withLock { $0.insert(publication.fingerprint) } })
        let task = Task { try await service.run() }
        func eventually(_ condition: () -> Bool) async throws -> Bool {
            for _ in 0..<1000 where !condition() { try await Task.sleep(for: .milliseconds(5)) }
            return condition()
        }
        try await Task.sleep(for: .milliseconds(20))
        #expect(plans.withLock { $0.isEmpty }, "no snapshot, no prober")
        current.withLock { $0 = first }
        #expect(try await eventually { published.withLock { $0.contains(first.healthFingerprint) } })
        current.withLock { $0 = refreshed }
        try await Task.sleep(for: .milliseconds(30))
        #expect(plans.withLock { $0 } == [first.healthFingerprint], "same pools: the prober keeps running")
        current.withLock { $0 = other }
        #expect(try await eventually { published.withLock { $0.contains(other.healthFingerprint) } })
        #expect(plans.withLock { $0 } == [first.healthFingerprint, other.healthFingerprint])
        task.cancel()
        try await task.value
    }
}
