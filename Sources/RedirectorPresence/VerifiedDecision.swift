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
    /// The members excluded because a check did not find the object: decide with
    /// `health.excluding(excluded, …)` to explain the final decision.
    public var excluded: [UInt32]

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

    /// Whether a check sent the request past a member (a fallback caused by absence).
    public var fellBack: Bool { !excluded.isEmpty }
}

extension PresenceChecker {
    /// Decides with `decide` (the backend's synchronous decision under a health view) and, as long
    /// as the decision's route needs verification, checks its `Location` and decides again without
    /// the member when the object is not found there. Each round excludes one more member, so it
    /// ends after at most `memberCount + 1` decisions.
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
            let (decision, location, mirror) = health.excluding(excluded, memberCount: memberCount, decide)
            guard decision.needsVerification, decision.action == .redirect, let location, decision.member >= 0,
                  excluded.count <= memberCount
            else {
                return VerifiedDecision(decision: decision, location: location, checks: checks, excluded: excluded)
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
