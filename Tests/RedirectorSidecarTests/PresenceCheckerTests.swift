import NIOConcurrencyHelpers
@testable import RedirectorCore
import RedirectorHealth
@testable import RedirectorPresence
import Testing

/// The presence cache (LRU order, TTLs, bounded size) and the checker's behaviour under load
/// (one HEAD per URL in flight, the per-mirror cap, what is and is not cached), with a scripted
/// client instead of the network.
@Suite struct PresenceCheckerTests {
    /// Answers every HEAD with the status its script gives for the URL (404 when unlisted),
    /// after `gate` opens; counts the HEADs per URL.
    final class ScriptedClient: PresenceClient {
        let answers: [String: ProbeResponse]
        let sent = NIOLockedValueBox<[String: Int]>([:])
        let gate: AsyncGate

        init(_ answers: [String: ProbeResponse], gate: AsyncGate = AsyncGate(open: true)) {
            self.answers = answers
            self.gate = gate
        }

        func head(url: String, timeout: Duration) async -> ProbeResponse {
            sent.withLockedValue { $0[url, default: 0] += 1 }
            await gate.wait()
            return answers[url] ?? .status(404)
        }

        func count(_ url: String) -> Int { sent.withLockedValue { $0[url] ?? 0 } }
    }

    /// Holds waiters until opened.
    final class AsyncGate: Sendable {
        private let state: NIOLockedValueBox<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>

        init(open: Bool) { state = NIOLockedValueBox((open, [])) }

        func wait() async {
            await withCheckedContinuation { continuation in
                let open = state.withLockedValue { state -> Bool in
                    if !state.open { state.waiters.append(continuation) }
                    return state.open
                }
                if open { continuation.resume() }
            }
        }

        func open() {
            let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
                state.open = true
                defer { state.waiters = [] }
                return state.waiters
            }
            waiters.forEach { $0.resume() }
        }
    }

    /// A clock the test moves.
    final class TestClock: Sendable {
        let now = NIOLockedValueBox<UInt64>(1_000)
        func advance(milliseconds: UInt64) { now.withLockedValue { $0 += milliseconds * 1_000_000 } }
        var read: @Sendable () -> UInt64 { { self.now.withLockedValue { $0 } } }
    }

    static let settings = PresenceSettings(timeoutMilliseconds: 1000, presentTTLMilliseconds: 60_000, absentTTLMilliseconds: 5_000,
                                           cacheEntries: 3, concurrencyPerMirror: 2, maxChecks: 3)

    @Test func theCacheEvictsTheLeastRecentlyUsedAndHonoursExpiry() {
        var cache = PresenceCache(capacity: 2)
        cache.store("a", present: true, expires: 100)
        cache.store("b", present: false, expires: 100)
        #expect(cache.lookup("a", now: 10) == true)  // a is now the most recently used
        cache.store("c", present: true, expires: 100)
        #expect(cache.lookup("b", now: 10) == nil)
        #expect(cache.evictions == 1)
        #expect(cache.lookup("a", now: 10) == true)
        #expect(cache.lookup("c", now: 100) == nil)  // expired at 100
        #expect(cache.count == 1)
        cache.store("d", present: false, expires: 200)  // reuses the expired entry's slot
        #expect(cache.count == 2)
        #expect(cache.evictions == 1)
        #expect(cache.lookup("d", now: 150) == false)
    }

    @Test func aMillionDistinctURLsKeepTheCacheAtItsCapacity() {
        var cache = PresenceCache(capacity: 1000)
        for index in 0..<1_000_000 { cache.store("https://m.example/\(index)", present: index % 2 == 0, expires: .max) }
        #expect(cache.count == 1000)
        #expect(cache.evictions == 999_000)
        #expect(cache.lookup("https://m.example/999999", now: 0) == false)
        #expect(cache.lookup("https://m.example/0", now: 0) == nil)
    }

    @Test func concurrentRequestsForOneURLSendOneHEAD() async {
        let gate = AsyncGate(open: false)
        let url = "https://m.example/blob"
        let client = ScriptedClient([url: .status(200)], gate: gate)
        let checker = PresenceChecker(client: client)
        let settings = PresenceSettings(timeoutMilliseconds: 1000, presentTTLMilliseconds: 60_000, absentTTLMilliseconds: 5_000,
                                        cacheEntries: 100, concurrencyPerMirror: 1, maxChecks: 3)
        let results = await withTaskGroup(of: PresenceCheck.self) { group in
            for _ in 0..<100 { group.addTask { await checker.check(url: url, mirror: "https://m.example", settings: settings) } }
            // Every request is waiting on the one HEAD before it answers.
            while client.count(url) == 0 { await Task.yield() }
            try? await Task.sleep(for: .milliseconds(50))
            gate.open()
            return await group.reduce(into: [PresenceCheck]()) { $0.append($1) }
        }
        #expect(client.count(url) == 1)
        #expect(results.count == 100)
        #expect(results.allSatisfy { $0.result == .present })
        // The answer is cached now.
        let again = await checker.check(url: url, mirror: "https://m.example", settings: settings)
        #expect(again.cached && again.result == .present)
        #expect(client.count(url) == 1)
    }

    @Test func answersAreCachedForTheirTTLAndUnknownsNotAtAll() async {
        let clock = TestClock()
        let client = ScriptedClient([
            "https://m/present": .status(200), "https://m/absent": .status(404),
            "https://m/moved": .status(302), "https://m/dead": .failed(.connect, "refused"),
        ])
        let checker = PresenceChecker(client: client, clock: clock.read)
        let settings = PresenceCheckerTests.settings
        func check(_ url: String) async -> PresenceCheck { await checker.check(url: url, mirror: "https://m", settings: settings) }

        #expect(await check("https://m/present").result == .present)
        #expect(await check("https://m/absent").result == .absent(status: 404))
        #expect(await check("https://m/moved").result == .unknown(reason: "status-302"))
        #expect(await check("https://m/dead").result == .unknown(reason: "connect"))
        #expect(await check("https://m/present").cached)
        #expect(await check("https://m/absent").cached)
        #expect(await !check("https://m/moved").cached)
        #expect(client.count("https://m/moved") == 2)
        #expect(client.count("https://m/dead") == 1)
        clock.advance(milliseconds: 5_001)  // past the absent TTL, within the present one
        #expect(await !check("https://m/absent").cached)
        #expect(await check("https://m/present").cached)
        clock.advance(milliseconds: 60_000)
        #expect(await !check("https://m/present").cached)
        #expect(client.count("https://m/present") == 2)
    }

    @Test func aMirrorAtItsConcurrencyLimitIsSkippedAtOnce() async {
        let gate = AsyncGate(open: false)
        let client = ScriptedClient(["https://m/a": .status(200), "https://m/b": .status(200)], gate: gate)
        let checker = PresenceChecker(client: client)
        let settings = PresenceSettings(timeoutMilliseconds: 1000, presentTTLMilliseconds: 60_000, absentTTLMilliseconds: 5_000,
                                        cacheEntries: 10, concurrencyPerMirror: 2, maxChecks: 3)
        async let first = checker.check(url: "https://m/a", mirror: "https://m", settings: settings)
        async let second = checker.check(url: "https://m/b", mirror: "https://m", settings: settings)
        while client.count("https://m/a") + client.count("https://m/b") < 2 { await Task.yield() }
        let third = await checker.check(url: "https://m/c", mirror: "https://m", settings: settings)
        #expect(third.result == .unknown(reason: "busy"))
        #expect(client.count("https://m/c") == 0)
        let other = Task { await checker.check(url: "https://n/a", mirror: "https://n", settings: settings) }
        while client.count("https://n/a") == 0 { await Task.yield() }  // another mirror is not limited
        gate.open()
        #expect(await first.result == .present)
        #expect(await second.result == .present)
        #expect(await other.value.result == .absent(status: 404))
    }

    @Test func aDecisionGoesDownTheChainUntilAMemberHasTheObject() async throws {
        // Two members in slots 0 and 1; the decide closure stands in for a snapshot's decision.
        let client = ScriptedClient(["https://b2/x": .status(200)])
        let checker = PresenceChecker(client: client)
        var decisions = 0
        let verified = await checker.decide(health: .allUp, memberCount: 2, settings: PresenceCheckerTests.settings) { view in
            decisions += 1
            for slot in 0..<2 where !view.isDown(UInt32(slot)) {
                var decision = Decision.testRedirect(member: Int32(slot))
                decision.needsVerification = true
                return (decision, "https://b\(slot + 1)/x", "https://b\(slot + 1)")
            }
            return (Decision.testPass, nil, "")
        }
        #expect(decisions == 2)
        #expect(verified.location == "https://b2/x")
        #expect(verified.excluded == [0])
        #expect(verified.checks.map(\.result) == [.absent(status: 404), .present])
        #expect(verified.fellBack)
        #expect(!verified.exhausted)
    }

    @Test func afterMaxChecksTheVerifyingRoutesAreSkipped() async {
        let client = ScriptedClient([:])  // every HEAD: 404
        let checker = PresenceChecker(client: client)
        var skipped = false
        let verified = await checker.decide(health: .allUp, memberCount: 10, settings: PresenceCheckerTests.settings) { view in
            guard !view.skipsVerifyingRoutes else {
                skipped = true
                return (Decision.testRedirect(member: 9), "https://upstream/x", "https://upstream")
            }
            for slot in 0..<9 where !view.isDown(UInt32(slot)) {
                var decision = Decision.testRedirect(member: Int32(slot))
                decision.needsVerification = true
                return (decision, "https://b\(slot)/x", "https://b\(slot)")
            }
            return (Decision.testPass, nil, "")
        }
        #expect(skipped)
        #expect(verified.checks.count == 3)  // settings.maxChecks
        #expect(verified.exhausted)
        #expect(verified.location == "https://upstream/x")
    }
}

extension Decision {
    /// A redirect to member `member` (fields other than action and member do not matter here).
    static func testRedirect(member: Int32) -> Decision {
        var decision = testPass
        decision.action = .redirect
        decision.status = 302
        decision.member = member
        return decision
    }

    /// A pass.
    static var testPass: Decision {
        Decision(action: .pass, status: 0, attributeIndex: nil, attributes: MatchAttributes(provider: -1), route: -1, target: .empty,
                 pool: .none, member: -1, step: .none, locationLength: 0)
    }
}
