/// The policy as the decision path reads it: every route, provider, pool and member flattened
/// into arrays of trivial values behind plain pointers, built once when a snapshot opens.
///
/// ``Policy`` stays the source of truth (the codec, the compiler and explanations use it); these
/// tables are derived from it. Reading a Swift array of structs that hold arrays costs a retain
/// and a release per access, and copying such a struct (a provider, a route action) runs its
/// value witness: measured with callgrind, that was a third of `rdr_decide`'s instructions. Here
/// nested lists are ``TableSlice``s into shared flat arrays, so a decision reads memory and
/// nothing else. The tables are immutable and owned by their snapshot (freed in its `deinit`).
struct DecisionTables {
    /// The routes, in evaluation order.
    let routes: FlatArray<RouteEntry>
    /// The providers, indexed by ``MatchAttributes/provider``.
    let providers: FlatArray<ProviderEntry>
    /// The pools, indexed by ``PoolRef/index``.
    let pools: FlatArray<PoolEntry>
    /// Every pool's members, in slot order.
    let members: FlatArray<MemberEntry>
    /// Method names of the routes' method filters.
    let methods: FlatArray<StringRef>
    /// Provider indices of the routes' client filters.
    let clientProviders: FlatArray<Int32>
    /// The routes' header conditions.
    let headerConditions: FlatArray<HeaderCondition>
    /// The parts of the routes' path patterns.
    let pathParts: FlatArray<PathPattern.Part>
    /// The parts of the redirect routes' path templates.
    let templateParts: FlatArray<TemplatePart>
    /// The response headers of the respond routes.
    let responseHeaders: FlatArray<Header>
    /// The providers' region targets.
    let regionTargets: FlatArray<RegionTarget>
    /// The providers' region orders (nearest regions first).
    let regionOrders: FlatArray<RegionOrderEntry>
    /// The region indices (into a provider's region targets) of the region orders.
    let nearestRegions: FlatArray<UInt16>
    /// The default pools of redirects whose provider has none (``PoolRef/none``: pass).
    let fallback: TargetHosts

    /// Flattens `policy`.
    init(_ policy: Policy) {
        var methods: [StringRef] = [], clientProviders: [Int32] = [], headerConditions: [HeaderCondition] = []
        var pathParts: [PathPattern.Part] = [], templateParts: [TemplatePart] = [], responseHeaders: [Header] = []
        func slice<Element>(_ elements: [Element], into flat: inout [Element]) -> TableSlice {
            defer { flat.append(contentsOf: elements) }
            return TableSlice(start: flat.count, count: elements.count)
        }
        routes = FlatArray(policy.routes.map { route in
            var clients = ClientRule(kind: .any, providers: TableSlice())
            switch route.clients {
            case .any: break
            case .matched: clients.kind = .matched
            case .unmatched: clients.kind = .unmatched
            case .providers(let list): clients = ClientRule(kind: .providers, providers: slice(list, into: &clientProviders))
            case .exceptProviders(let list):
                clients = ClientRule(kind: .exceptProviders, providers: slice(list, into: &clientProviders))
            }
            var action = ActionEntry(kind: .pass, status: 0, target: .pool(.none), template: TableSlice(), keepQuery: false,
                                     hashKey: .path, headers: TableSlice(), verify: false)
            switch route.action {
            case .pass: break
            case .respond(let status, let headers):
                (action.kind, action.status, action.headers) = (.respond, status, slice(headers, into: &responseHeaders))
            case .redirect(let status, let target, let template, let keepQuery, let hashKey, let verify):
                action = ActionEntry(kind: .redirect, status: status, target: target, template: slice(template, into: &templateParts),
                                     keepQuery: keepQuery, hashKey: hashKey, headers: TableSlice(), verify: verify)
            }
            return RouteEntry(
                name: route.name, methods: slice(route.methods.methods, into: &methods), methodsNegated: route.methods.isNegated, clients: clients,
                headers: slice(route.headers, into: &headerConditions), path: slice(route.path.parts, into: &pathParts), action: action)
        })
        var regionTargets: [RegionTarget] = [], regionOrders: [RegionOrderEntry] = [], nearestRegions: [UInt16] = []
        providers = FlatArray(policy.providers.map { provider in
            let orders = provider.regionOrders.map { RegionOrderEntry(region: $0.region, nearest: slice($0.nearest, into: &nearestRegions)) }
            return ProviderEntry(
                name: provider.name, isActive: provider.isActive, targets: provider.targets,
                regions: slice(provider.regionTargets, into: &regionTargets), orders: slice(orders, into: &regionOrders),
                nearestRegionOnlyOnFailure: provider.nearestRegionOnlyOnFailure)
        })
        var members: [MemberEntry] = []
        pools = FlatArray(policy.pools.map { pool in
            let entries = pool.members.map {
                MemberEntry(url: $0.url, priority: $0.priority, inverseWeight: 1 / Double($0.weight), seed: $0.seed, slot: $0.slot)
            }
            return PoolEntry(name: pool.name, members: slice(entries, into: &members), fallback: pool.fallback)
        })
        self.members = FlatArray(members)
        self.methods = FlatArray(methods)
        self.clientProviders = FlatArray(clientProviders)
        self.headerConditions = FlatArray(headerConditions)
        self.pathParts = FlatArray(pathParts)
        self.templateParts = FlatArray(templateParts)
        self.responseHeaders = FlatArray(responseHeaders)
        self.regionTargets = FlatArray(regionTargets)
        self.regionOrders = FlatArray(regionOrders)
        self.nearestRegions = FlatArray(nearestRegions)
        if case .redirect(let pools) = policy.fallback { fallback = pools } else { fallback = TargetHosts() }
    }

    /// Frees every table (the owning snapshot's `deinit`).
    func deallocate() {
        routes.deallocate(); providers.deallocate(); pools.deallocate(); members.deallocate()
        methods.deallocate(); clientProviders.deallocate(); headerConditions.deallocate(); pathParts.deallocate()
        templateParts.deallocate(); responseHeaders.deallocate(); regionTargets.deallocate(); regionOrders.deallocate(); nearestRegions.deallocate()
    }
}

/// A run of `count` entries from `start` in one of ``DecisionTables``' arrays.
struct TableSlice: BitwiseCopyable {
    /// Index of the first entry.
    var start: Int = 0
    /// Number of entries.
    var count: Int = 0
}

/// A fixed array of trivial values: allocated and filled once, read through its pointer.
struct FlatArray<Element: BitwiseCopyable>: BitwiseCopyable {
    /// The first entry (an allocation of at least one, so never dangling for an empty array).
    let base: UnsafeMutablePointer<Element>
    /// Number of entries.
    let count: Int

    /// A copy of `elements`.
    init(_ elements: [Element]) {
        base = .allocate(capacity: max(elements.count, 1))
        base.initialize(from: elements, count: elements.count)
        count = elements.count
    }

    /// Entry `index`, which the caller knows to be in range (indices come from validated snapshots).
    @inline(__always)
    subscript(index: Int) -> Element { base[index] }

    /// The entries of `slice`.
    @inline(__always)
    subscript(slice: TableSlice) -> UnsafeBufferPointer<Element> {
        UnsafeBufferPointer(start: base + slice.start, count: slice.count)
    }

    /// Frees the storage.
    func deallocate() { base.deallocate() }
}

/// A ``Route`` flattened.
struct RouteEntry: BitwiseCopyable {
    /// The route's name.
    var name: StringRef
    /// Into ``DecisionTables/methods``.
    var methods: TableSlice
    /// Whether the route applies to the methods *not* listed.
    var methodsNegated: Bool
    /// Which clients it applies to.
    var clients: ClientRule
    /// Into ``DecisionTables/headerConditions``.
    var headers: TableSlice
    /// Into ``DecisionTables/pathParts``.
    var path: TableSlice
    /// What it does.
    var action: ActionEntry
}

/// A ``ClientFilter`` flattened.
struct ClientRule: BitwiseCopyable {
    /// The ``ClientFilter`` case.
    enum Kind: UInt8 { case any, matched, unmatched, providers, exceptProviders }
    /// Which case.
    var kind: Kind
    /// Into ``DecisionTables/clientProviders``, for the two provider-list kinds.
    var providers: TableSlice

    /// Whether a client of `provider` (-1 for none) passes; `isActive` tells whether that
    /// provider is active (see ``ClientFilter``: an inactive provider's clients are nobody's).
    @inline(__always)
    func matches(provider: Int32, isActive: Bool, lists: FlatArray<Int32>) -> Bool {
        switch kind {
        case .any: return true
        case .matched: return provider >= 0 && isActive
        case .unmatched: return provider < 0 || !isActive
        case .providers: return isActive && lists[providers].contains(provider)
        case .exceptProviders: return !(isActive && lists[providers].contains(provider))
        }
    }
}

/// A ``RouteAction`` flattened.
struct ActionEntry: BitwiseCopyable {
    /// The ``RouteAction`` case.
    enum Kind: UInt8 { case pass, respond, redirect }
    /// Which case.
    var kind: Kind
    /// The response status (0 for pass).
    var status: Int32
    /// Where a redirect goes.
    var target: RedirectTarget
    /// Into ``DecisionTables/templateParts``; empty: the request path.
    var template: TableSlice
    /// Whether a redirect keeps the request's query.
    var keepQuery: Bool
    /// What a redirect's rendezvous hash is computed on.
    var hashKey: HashKey
    /// Into ``DecisionTables/responseHeaders``: a respond action's headers.
    var headers: TableSlice
    /// Whether a redirect waits for a presence check (``RouteAction/redirect(status:target:path:keepQuery:hashKey:verify:)``).
    var verify: Bool
}

/// A ``Provider`` flattened.
struct ProviderEntry: BitwiseCopyable {
    /// The provider's name.
    var name: StringRef
    /// Inactive providers match but never get redirects.
    var isActive: Bool
    /// Its pools for all regions.
    var targets: TargetHosts
    /// Into ``DecisionTables/regionTargets``.
    var regions: TableSlice
    /// Into ``DecisionTables/regionOrders``.
    var orders: TableSlice
    /// ``Provider/nearestRegionOnlyOnFailure``.
    var nearestRegionOnlyOnFailure: Bool
}

/// A ``RegionOrder`` flattened.
struct RegionOrderEntry: BitwiseCopyable {
    /// The client's region.
    var region: StringRef
    /// Into ``DecisionTables/nearestRegions``: indices into the provider's region targets.
    var nearest: TableSlice
}

/// A ``Pool`` flattened.
struct PoolEntry: BitwiseCopyable {
    /// The pool's name ("" for a pool of one URL).
    var name: StringRef
    /// Into ``DecisionTables/members``.
    var members: TableSlice
    /// Where the chain goes when no member is up.
    var fallback: PoolFallback
}

/// A ``PoolMember`` as the choice reads it: the weight as its inverse, so that a score costs a
/// multiplication rather than a division.
struct MemberEntry: BitwiseCopyable {
    /// The member's base URL.
    var url: StringRef
    /// Lower numbers are preferred.
    var priority: Int32
    /// 1 / weight (the compiler and the codec reject weight 0).
    var inverseWeight: Double
    /// The member's rendezvous seed.
    var seed: UInt64
    /// Its index in health states.
    var slot: UInt32
}
