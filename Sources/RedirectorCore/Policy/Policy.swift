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

    /// Creates a policy.
    public init(providers: [Provider], routes: [Route], fallback: FallbackAction = .pass, trustedProxies: [IPPrefix] = []) {
        self.providers = providers
        self.routes = routes
        self.fallback = fallback
        self.trustedProxies = trustedProxies
    }
}
