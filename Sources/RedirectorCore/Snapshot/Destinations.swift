/// A host a snapshot can send clients to: what a firewall in front of them must let through.
public struct Destination: Hashable, Sendable {
    /// `https` or `http`.
    public var scheme: String
    /// The host name or address, as the configuration wrote it (an IPv6 address in brackets).
    public var host: String
    /// The port the client connects to: the URL's, or the scheme's default.
    public var port: Int
    /// The member base URLs on this host, sorted.
    public var urls: [String]

    /// `scheme://host[:port]`, the port shown only when it is not the scheme's default.
    public var origin: String {
        "\(scheme)://\(host)" + (port == (scheme == "https" ? 443 : 80) ? "" : ":\(port)")
    }
}

extension Snapshot {
    /// Every host a redirect of this snapshot can go to, sorted by origin: the members of the pools
    /// that some redirect route can reach — its own pool, or its provider's pools for the class (all
    /// regions, or every active provider's for the client's own), the default pool for the class —
    /// and the pools those name as fallbacks. Pools nothing reaches are left out.
    public func destinations() -> [Destination] {
        let pools = policy.pools
        var reached = Set<Int>()
        func reach(_ reference: PoolRef) {
            var current = reference
            while let index = current.index, index < pools.count, reached.insert(index).inserted {
                guard case .pool(let next) = pools[index].fallback else { return }
                current = next
            }
        }
        for route in policy.routes {
            guard case .redirect(_, let target, _, _, _, _) = route.action else { continue }
            switch target {
            case .pool(let reference):
                reach(reference)
            case .provider(let targetClass, let fixed):
                let providers = policy.providers.indices.filter { fixed == nil || Int32($0) == fixed }
                for provider in providers.map({ policy.providers[$0] }) where provider.isActive {
                    reach(provider.targets[targetClass])
                    for region in provider.regionTargets { reach(region.targets[targetClass]) }
                }
                if case .redirect(let defaults) = policy.fallback { reach(defaults[targetClass]) }
            }
        }
        var byOrigin: [String: Destination] = [:]
        for url in Set(reached.flatMap { pools[$0].members.map { strings.string($0.url) } }) {
            guard let destination = Destination(url: url) else { continue }
            byOrigin[destination.origin, default: destination].urls.append(url)
        }
        return byOrigin.values.map { destination in
            var destination = destination
            destination.urls = Array(Set(destination.urls)).sorted()
            return destination
        }.sorted { $0.origin < $1.origin }
    }
}

extension Destination {
    /// The destination of a member base URL (`scheme://authority[/path]`), nil for anything else.
    public init?(url: String) {
        guard let separator = url.firstRange(of: "://") else { return nil }
        let scheme = String(url[..<separator.lowerBound]).lowercased()
        guard scheme == "https" || scheme == "http" else { return nil }
        let authority = url[separator.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var host = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        // host, host:port, [v6], [v6]:port
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            guard let value = Int(authority[authority.index(after: colon)...]) else { return nil }
            host = authority[..<colon]
            port = value
        }
        guard !host.isEmpty else { return nil }
        self.init(scheme: scheme, host: host.lowercased(), port: port, urls: [])
    }
}
