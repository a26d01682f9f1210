/// Which request methods a route applies to.
public struct MethodFilter: Hashable, Sendable {
    /// The listed methods (upper case, compared byte for byte).
    public var methods: [StringRef]
    /// When true the route applies to every method *not* listed (an empty list then means any method).
    public var isNegated: Bool

    /// Creates a filter.
    public init(methods: [StringRef], isNegated: Bool = false) {
        self.methods = methods
        self.isNegated = isNegated
    }

    /// Whether `method` passes the filter.
    @inline(__always)
    func matches(_ method: UnsafeRawBufferPointer, strings: StringTable) -> Bool {
        var listed = false
        for candidate in methods where Bytes.equal(strings.bytes(candidate), method) {
            listed = true
            break
        }
        return listed != isNegated
    }
}

/// Which clients a route applies to, by their matched provider.
///
/// The clients of an inactive provider count as clients of no provider everywhere, so that such a
/// provider "matches and is explained, but is never redirected" even by a route that lists it.
public enum ClientFilter: Hashable, Sendable {
    /// Every client.
    case any
    /// Clients whose address matched an active provider.
    case matched
    /// Clients that matched no active provider.
    case unmatched
    /// Clients of the listed active providers (by index).
    case providers([Int32])
    /// Clients of any other provider, of an inactive one, or of none.
    case exceptProviders([Int32])

    /// Whether a client of `provider` (-1 for none) passes; `isActive` tells whether that provider is active.
    @inline(__always)
    func matches(provider: Int32, isActive: Bool) -> Bool {
        switch self {
        case .any: return true
        case .matched: return provider >= 0 && isActive
        case .unmatched: return provider < 0 || !isActive
        case .providers(let list): return isActive && list.contains(provider)
        case .exceptProviders(let list): return !(isActive && list.contains(provider))
        }
    }
}

/// One piece of a redirect path template.
public enum TemplatePart: Hashable, Sendable {
    /// Literal bytes.
    case literal(StringRef)
    /// The text of capture `index` of the route's pattern.
    case capture(Int)
    /// The whole request path (without the query).
    case path
}

/// Where a redirect goes.
public enum RedirectTarget: Hashable, Sendable {
    /// A host of a provider: of the client's own provider (`provider == nil`) or of a fixed one.
    /// Region-specific targets apply when the client belongs to that provider.
    case provider(TargetClass, provider: Int32?)
    /// A fixed base URL.
    case url(StringRef)
}

/// What a route does with the requests it matches.
public enum RouteAction: Hashable, Sendable {
    /// Let the request through unchanged.
    case pass
    /// Answer `status` with `headers` and no body (e.g. 404, 405, or 200 for `/v2/`).
    case respond(status: Int32, headers: [Header])
    /// Answer `status` with `Location: <target><path>[?query]`.
    case redirect(status: Int32, target: RedirectTarget, path: [TemplatePart], keepQuery: Bool)
}

/// A response header a `respond` route sets.
public struct Header: Hashable, Sendable {
    /// Header name.
    public var name: StringRef
    /// Header value.
    public var value: StringRef

    /// Creates a header.
    public init(name: StringRef, value: StringRef) {
        self.name = name
        self.value = value
    }
}

/// One rule of the policy. Routes are tried in order; the first that matches decides.
public struct Route: Hashable, Sendable {
    /// Name shown in explanations, logs and metrics.
    public var name: StringRef
    /// Methods it applies to.
    public var methods: MethodFilter
    /// Paths it applies to.
    public var path: PathPattern
    /// Clients it applies to.
    public var clients: ClientFilter
    /// What it does.
    public var action: RouteAction

    /// Creates a route.
    public init(name: StringRef, methods: MethodFilter, path: PathPattern, clients: ClientFilter, action: RouteAction) {
        self.name = name
        self.methods = methods
        self.path = path
        self.clients = clients
        self.action = action
    }
}

/// What happens when a redirect's provider has no target (unmatched client, inactive provider, no host).
public enum FallbackAction: Hashable, Sendable {
    /// Serve the request as usual.
    case pass
    /// Redirect to these hosts (a class without a host passes).
    case redirect(TargetHosts)
}

/// Byte helpers shared by the decision code.
enum Bytes {
    /// Whether two byte ranges are equal.
    @inline(__always)
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for index in 0..<a.count where a[index] != b[index] { return false }
        return true
    }
}
