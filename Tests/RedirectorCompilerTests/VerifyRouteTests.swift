import RedirectorCompiler
import RedirectorCore
import Testing

/// `verify` routes compiled from YAML: decisions that need a presence check say so, a member
/// excluded by a failed check is skipped like a down one (reason `missing`), a route with no
/// member left gives the request to the routes after it, and presence settings compile with
/// their errors named.
@Suite struct VerifyRouteTests {
    static let config = """
        pools:
          buckets:
            members:
              - { url: "https://b1.example" }
              - { url: "https://b2.example", priority: 1 }
        routes:
          - name: blob
            path: /v2/{repo...}/blobs/{digest:digest}
            redirect: { to: { pool: buckets }, rewrite: "/containers/images/{digest}", verify: true }
          - name: upstream
            path: /v2/{rest...}
            redirect: { to: "https://upstream.example" }
        """
    static let blob = "/v2/pause/blobs/sha256:" + String(repeating: "a", count: 64)

    static func compile(_ body: String = config) throws -> Snapshot {
        try Fixture([:]).compile("version: 1\n" + body)
    }

    @Test func aVerifyRouteMarksItsRedirectsAndOthersDoNot() throws {
        let snapshot = try VerifyRouteTests.compile()
        let blob = snapshot.decide(client: IPAddress("192.0.2.1"), method: "GET", target: VerifyRouteTests.blob)
        #expect(blob.decision.needsVerification)
        #expect(blob.location == "https://b1.example/containers/images/sha256:" + String(repeating: "a", count: 64))
        let manifest = snapshot.decide(client: IPAddress("192.0.2.1"), method: "GET", target: "/v2/pause/manifests/3.9")
        #expect(!manifest.decision.needsVerification)
        #expect(manifest.location == "https://upstream.example/v2/pause/manifests/3.9")
        #expect(snapshot.policy.verifies)
    }

    @Test func excludedMembersAreSkippedAsMissingThenTheNextRouteDecides() throws {
        let snapshot = try VerifyRouteTests.compile()
        let count = snapshot.policy.memberCount
        let second = HealthView.allUp.excluding([0], memberCount: count) { view in
            (snapshot.decide(client: IPAddress("192.0.2.1"), method: "GET", target: VerifyRouteTests.blob, health: view),
             snapshot.explain(client: "192.0.2.1", method: "GET", target: VerifyRouteTests.blob, health: view))
        }
        #expect(second.0.location?.hasPrefix("https://b2.example/containers/images/") == true)
        #expect(second.0.decision.needsVerification)
        #expect(second.1.skipped == ["https://b1.example(buckets):missing"])

        let neither = HealthView.allUp.excluding([0, 1], memberCount: count) { view in
            snapshot.explain(client: "192.0.2.1", method: "GET", target: VerifyRouteTests.blob, health: view)
        }
        #expect(neither.route == "upstream")
        #expect(neither.location == "https://upstream.example" + VerifyRouteTests.blob)
        #expect(neither.skipped == ["https://b1.example(buckets):missing", "https://b2.example(buckets):missing"])
    }

    @Test func downMembersStayDownUnderExclusions() throws {
        let snapshot = try VerifyRouteTests.compile()
        let state = HealthState(records: [MemberHealth(state: .up, since: 0), MemberHealth(state: .down, since: 0)],
                                writtenAt: 0, staleAfter: 10_000)
        let explanation = withExtendedLifetime(state) {
            state.view.excluding([0], memberCount: snapshot.policy.memberCount) { view in
                snapshot.explain(client: "192.0.2.1", method: "GET", target: VerifyRouteTests.blob, health: view)
            }
        }
        #expect(explanation.route == "upstream")
        #expect(explanation.skipped == ["https://b1.example(buckets):missing", "https://b2.example(buckets):down"])
    }

    @Test func aRequestOutOfChecksSkipsTheVerifyingRoutes() throws {
        let snapshot = try VerifyRouteTests.compile()
        let explanation = HealthView.allUp.excluding([0], memberCount: snapshot.policy.memberCount, skippingVerifyingRoutes: true) { view in
            snapshot.explain(client: "192.0.2.1", method: "GET", target: VerifyRouteTests.blob, health: view)
        }
        #expect(explanation.route == "upstream")
        let unexcluded = HealthView.allUp.excluding([], memberCount: snapshot.policy.memberCount, skippingVerifyingRoutes: true) { view in
            snapshot.explain(client: "192.0.2.1", method: "GET", target: VerifyRouteTests.blob, health: view)
        }
        #expect(unexcluded.route == "upstream")
    }

    @Test func aRouteWithoutVerifyPassesWhenEveryMemberIsDown() throws {
        let snapshot = try VerifyRouteTests.compile(VerifyRouteTests.config.replacingOccurrences(of: ", verify: true", with: ""))
        let explanation = HealthView.allUp.excluding([0, 1], memberCount: snapshot.policy.memberCount) { view in
            snapshot.explain(client: "192.0.2.1", method: "GET", target: VerifyRouteTests.blob, health: view)
        }
        #expect(explanation.route == "blob")
        #expect(explanation.action == "pass")
        #expect(explanation.step == .pass)
    }

    @Test func presenceSettingsCompileAndSurviveTheSnapshot() throws {
        let snapshot = try VerifyRouteTests.compile(VerifyRouteTests.config + """

            presence: { timeout: 2s, presentTTL: 2h, absentTTL: "0", cacheEntries: 500, concurrencyPerMirror: 4, maxChecks: 5 }
            """)
        #expect(snapshot.policy.presence == PresenceSettings(
            timeoutMilliseconds: 2000, presentTTLMilliseconds: 7_200_000, absentTTLMilliseconds: 0,
            cacheEntries: 500, concurrencyPerMirror: 4, maxChecks: 5))
        #expect(try VerifyRouteTests.compile().policy.presence == .default)
        let largest = try VerifyRouteTests.compile(VerifyRouteTests.config + "\npresence: { cacheEntries: 10000000 }\n")
        #expect(largest.policy.presence.cacheEntries == PresenceSettings.cacheLimit)
    }

    @Test func badPresenceSettingsAreNamed() throws {
        let fixture = try Fixture()
        let cases: [(String, String)] = [
            ("presence: { timeout: 0s }", "presence.timeout"),
            ("presence: { cacheEntries: 0 }", "presence.cacheEntries"),
            ("presence: { cacheEntries: 10000001 }", "presence.cacheEntries"),
            ("presence: { concurrencyPerMirror: 0 }", "presence.concurrencyPerMirror"),
            ("presence: { absentTTL: soon }", "presence.absentTTL"),
            ("presence: { negativeTTL: 1m }", "presence.negativeTTL"),
            ("presence: { maxChecks: 0 }", "presence.maxChecks"),
            ("presence: { maxChecks: 17 }", "presence.maxChecks"),
        ]
        for (line, place) in cases {
            let error = fixture.compileError("version: 1\n" + VerifyRouteTests.config + "\n" + line + "\n")
            #expect(error.contains(place), "\(line): \(error)")
        }
    }
}
