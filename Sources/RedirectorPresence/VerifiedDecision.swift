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

/// The rounds of a verified decision: decide, and while the decision needs a check, take the
/// check's answer and decide again. Shared by the asynchronous path and the cached one.
struct Verification {
    /// What the next round needs.
    enum Step {
        /// The decision is final.
        case done(VerifiedDecision)
        /// `url` (on the mirror with base URL `mirror`) must be checked.
        case check(url: String, mirror: String)
    }

    let health: HealthView
    let memberCount: Int
    let settings: PresenceSettings
    private var excluded: [UInt32] = []
    private var checks: [PresenceCheck] = []
    private var pending: (decision: Decision, location: String)?

    init(health: HealthView, memberCount: Int, settings: PresenceSettings) {
        self.health = health
        self.memberCount = memberCount
        self.settings = settings
    }

    /// Decides (again) and says what is needed next.
    mutating func next(_ decide: (HealthView) -> (decision: Decision, location: String?, mirror: String)) -> Step {
        let exhausted = checks.count >= Int(settings.maxChecks) || excluded.count > memberCount
        let (decision, location, mirror) = health.excluding(excluded, memberCount: memberCount,
                                                             skippingVerifyingRoutes: exhausted, decide)
        guard decision.needsVerification, decision.action == .redirect, let location, decision.member >= 0, !exhausted else {
            var verified = VerifiedDecision(decision: decision, location: location, checks: checks, excluded: excluded)
            verified.exhausted = exhausted
            return .done(verified)
        }
        pending = (decision, location)
        return .check(url: location, mirror: mirror)
    }

    /// Takes the answer of the check ``next(_:)`` asked for: the final decision when the object is
    /// there, else nil (the member is excluded and ``next(_:)`` decides again).
    mutating func record(_ check: PresenceCheck) -> VerifiedDecision? {
        checks.append(check)
        guard let (decision, location) = pending else { return nil }
        pending = nil
        if check.result == .present {
            return VerifiedDecision(decision: decision, location: location, checks: checks, excluded: excluded)
        }
        excluded.append(UInt32(bitPattern: decision.member))
        return nil
    }
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
        var rounds = Verification(health: health, memberCount: memberCount, settings: settings)
        while true {
            switch rounds.next(decide) {
            case .done(let verified):
                return verified
            case .check(let url, let mirror):
                if let verified = rounds.record(await check(url: url, mirror: mirror, settings: settings)) { return verified }
            }
        }
    }

    /// ``decide(health:memberCount:settings:_:)`` when every answer it needs is in the cache, without
    /// suspending (a warm cache then costs no task); nil as soon as one is not.
    public func decideFromCache(health: HealthView, memberCount: Int, settings: PresenceSettings,
                                _ decide: (HealthView) -> (decision: Decision, location: String?, mirror: String)) -> VerifiedDecision? {
        var rounds = Verification(health: health, memberCount: memberCount, settings: settings)
        while true {
            switch rounds.next(decide) {
            case .done(let verified):
                return verified
            case .check(let url, _):
                guard let check = cached(url: url, settings: settings) else { return nil }
                if let verified = rounds.record(check) { return verified }
            }
        }
    }
}
