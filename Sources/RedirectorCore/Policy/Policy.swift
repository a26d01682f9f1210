/// The decision policy: providers, routes, the fallback for clients without a target, and trust.
public struct Policy: Hashable, Sendable {
    /// Providers, indexed by ``MatchAttributes/provider``.
    public var providers: [Provider]
    /// Routes in evaluation order.
    public var routes: [Route]
    /// What a redirect does when its provider has no target.
    public var fallback: FallbackAction
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` / Envoy headers are believed (see ``ClientAddressResolver``).
    public var trustedProxies: [IPPrefix]
    /// Every target: pools of mirrors (a target written as one URL is a pool of one).
    public private(set) var pools: [Pool]
    /// Number of pool members across all pools: the size of a health state.
    public private(set) var memberCount: Int
    /// The lower-case names of the headers routes look at, each once: what backends pass in.
    public private(set) var headerNames: [StringRef]
    /// How `verify` routes check presence.
    public var presence: PresenceSettings

    /// Creates a policy. Members are numbered (``PoolMember/slot``) across the pools in order.
    public init(providers: [Provider], routes: [Route], fallback: FallbackAction = .pass, trustedProxies: [IPPrefix] = [],
                pools: [Pool] = [], presence: PresenceSettings = .default) {
        self.providers = providers
        self.routes = routes
        self.fallback = fallback
        self.trustedProxies = trustedProxies
        self.presence = presence
        var slot: UInt32 = 0
        self.pools = pools.map { pool in
            var pool = pool
            for index in pool.members.indices {
                pool.members[index].slot = slot
                slot &+= 1
            }
            return pool
        }
        self.memberCount = Int(slot)
        var names: [StringRef] = []
        for route in routes {
            for condition in route.headers where !names.contains(condition.name) { names.append(condition.name) }
        }
        self.headerNames = names
    }

    /// Whether some route redirects only after a presence check.
    public var verifies: Bool {
        routes.contains { route in
            if case .redirect(_, _, _, _, _, true) = route.action { return true }
            return false
        }
    }

    /// All members, in slot order.
    public var members: [PoolMember] { pools.flatMap(\.members) }
}
