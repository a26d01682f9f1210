import RedirectorCore
import RedirectorHealth
import Testing

/// The real prober (AsyncHTTPClient) against a real HTTP server on loopback.
@Suite(.serialized) struct HealthLoopbackTests {
    /// Waits (polling, at most 120 s: a parallel run on two cores can starve the pool) until `condition` holds.
    private func eventually(_ condition: () -> Bool) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while !condition() {
            guard clock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    @Test func takesAMemberDownAfterFallFailuresAndUpAfterRiseSuccesses() async throws {
        let server = try await LoopbackHTTPServer(status: 200)
        let client = HTTPProbeClient()
        let path = TestSnapshot.temporaryDirectory() + "/health.state"
        // Member a is the server; member b's port refuses connections.
        let snapshot = try HealthTestSnapshot.make(checks: [server.url("/healthz"), "http://127.0.0.1:1/healthz"],
                                                   intervalMilliseconds: 50, timeoutMilliseconds: 2000, rise: 2, fall: 3)
        let prober = HealthProber(plan: ProbePlan(snapshot: snapshot), client: client, stateFile: path, logger: quietLogger())
        let task = Task { await prober.run() }
        func record(_ slot: Int) -> MemberHealth { prober.records[slot] }
        func file() throws -> HealthState {
            try HealthStateFile.read(path: path, fingerprint: snapshot.healthFingerprint,
                                     memberCount: snapshot.policy.memberCount, now: unixMilliseconds())
        }

        #expect(try await eventually { record(0).status == 200 }, "probed and answered 200")
        #expect(record(0).state == .up && record(0).failure == .none)
        #expect(try await eventually { record(1).state == .down }, "a refused connection fails")
        #expect(record(1).failure == .connect && record(1).status == 0 && !record(1).error.isEmpty)

        server.answer(503)
        let before = server.requests
        #expect(try await eventually { record(0).state == .down })
        #expect(server.requests - before >= 3, "down only after fall (3) failures")
        #expect(record(0).failure == .status && record(0).status == 503)
        // The prober publishes the file right after its records change: a reader may look in between.
        #expect(try await eventually { (try? file().records.map(\.state)) == [.down, .down, .unchecked] }, "the change reaches the file")
        let down = try file()
        #expect(down.records[0].failure == .status && down.records[0].status == 503)

        server.answer(200)
        let recovering = server.requests
        #expect(try await eventually { record(0).state == .up })
        #expect(server.requests - recovering >= 2, "up only after rise (2) successes")
        #expect(try await eventually { (try? file().records.map(\.state)) == [.up, .down, .unchecked] }, "the recovery reaches the file")

        task.cancel()
        await task.value
        await client.shutdown()
        await server.stop()
    }

    @Test func aProbeThatTakesLongerThanItsTimeoutTimesOut() async throws {
        // A member that answers 2 s late, probed with a 100 ms timeout.
        let server = try await LoopbackHTTPServer(status: 200, delay: .seconds(2))
        let client = HTTPProbeClient()
        let target = ProbeTarget(slot: 0, pool: "p", member: "m", url: server.url("/"), interval: .seconds(1), timeout: .milliseconds(100))
        let response = await client.probe(target)
        if case .failed(let failure, _) = response {
            #expect(failure == .timeout)
        } else {
            Issue.record("expected a timeout, got \(response)")
        }
        #expect(await client.probe(ProbeTarget(slot: 0, pool: "p", member: "m", url: server.url("/"), method: "HEAD",
                                               interval: .seconds(1), timeout: .seconds(10))) == .status(200))
        #expect(await client.probe(ProbeTarget(slot: 0, pool: "p", member: "m", url: "not a url", interval: .seconds(1),
                                               timeout: .seconds(1))) != .status(200))
        await client.shutdown()
        await server.stop()
    }
}
