import RedirectorCore

/// A decision whose redirect, if its route says `verify`, goes to a member found holding the
/// object: what every backend that checks presence serves.
public struct VerifiedDecision: Sendable {
    /// The final decision.
    public var decision: Decision
    /// Its `Location`, nil unless it redirects.
    public var location: String?
    /// The checks made on the way, in order.
    public var checks: [PresenceCheck]
    /// The members excluded because a check did not find the object.
    public var excluded: [UInt32]
    /// Whether the request ran out of checks (``PresenceSettings/maxChecks``), so the routes that
    /// verify were skipped.
    public var exhausted = false

    /// A decision that needed no check.
    public init(unchecked decision: Decision, location: String?) {
        self.init(decision: decision, location: location, checks: [], excluded: [])
    }

    init(decision: Decision, location: String?, checks: [PresenceCheck], excluded: [UInt32]) {
        self.decision = decision
        self.location = location
        self.checks = checks
        self.excluded = excluded
    }

    /// Calls `body` with the view the final decision was made under (`health` with the excluded
    /// members and the skipped routes): what an explanation of it decides with.
    public func view<Result>(of health: HealthView, memberCount: Int, _ body: (HealthView) -> Result) -> Result {
        health.excluding(excluded, memberCount: memberCount, skippingVerifyingRoutes: exhausted, body)
    }

    /// Whether a check sent the request past a member (a fallback caused by absence).
    public var fellBack: Bool { !excluded.isEmpty }
}

extension PresenceChecker {
    /// Decides with `decide` (the backend's synchronous decision under a health view) and, as long
    /// as the decision's route needs verification, checks its `Location` and decides again without
    /// the member when the object is not found there. Each round excludes one more member; after
    /// ``PresenceSettings/maxChecks`` checks without the object the routes that verify are
    /// skipped, so at most `maxChecks + 1` decisions are made.
    ///
    /// - Parameters:
    ///   - health: which members are down; checks are never sent to them.
    ///   - memberCount: ``Policy/memberCount``.
    ///   - decide: the decision under a view, its `Location`, and the chosen member's base URL.
    public func decide(health: HealthView, memberCount: Int, settings: PresenceSettings,
                       _ decide: (HealthView) -> (decision: Decision, location: String?, mirror: String)) async -> VerifiedDecision {
        var excluded: [UInt32] = []
        var checks: [PresenceCheck] = []
        while true {
            let exhausted = checks.count >= Int(settings.maxChecks) || excluded.count > memberCount
            let (decision, location, mirror) = health.excluding(excluded, memberCount: memberCount,
                                                                 skippingVerifyingRoutes: exhausted, decide)
            guard decision.needsVerification, decision.action == .redirect, let location, decision.member >= 0, !exhausted else {
                var verified = VerifiedDecision(decision: decision, location: location, checks: checks, excluded: excluded)
                verified.exhausted = exhausted
                return verified
            }
            let check = await self.check(url: location, mirror: mirror, settings: settings)
            checks.append(check)
            if check.result == .present {
                return VerifiedDecision(decision: decision, location: location, checks: checks, excluded: excluded)
            }
            excluded.append(UInt32(bitPattern: decision.member))
        }
    }
}
