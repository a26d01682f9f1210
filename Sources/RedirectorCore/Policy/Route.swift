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
}

/// One piece of a redirect path template.
public enum TemplatePart: Hashable, Sendable, BitwiseCopyable {
    /// Literal bytes.
    case literal(StringRef)
    /// The text of capture `index` of the route's pattern.
    case capture(Int)
    /// The whole request path (without the query).
    case path
}

/// Where a redirect goes.
public enum RedirectTarget: Hashable, Sendable, BitwiseCopyable {
    /// A target of a provider: of the client's own provider (`provider == nil`) or of a fixed one.
    /// Region-specific targets apply when the client belongs to that provider.
    case provider(TargetClass, provider: Int32?)
    /// A fixed pool (one member for a target written as a URL).
    case pool(PoolRef)
}

/// What the rendezvous hash of a redirect to a pool is computed on: one object, one mirror.
public enum HashKey: Hashable, Sendable, BitwiseCopyable {
    /// The request path, without the query.
    case path
    /// Capture `index` of the route's path pattern (e.g. `{digest}`).
    case capture(Int)
}

/// A condition on a request header.
public struct HeaderCondition: Hashable, Sendable, BitwiseCopyable {
    /// How the header's value is compared.
    public enum Match: Hashable, Sendable, BitwiseCopyable {
        /// The header is present, whatever its value.
        case present
        /// The value equals this, byte for byte.
        case exact(StringRef)
        /// The value starts with this, byte for byte.
        case prefix(StringRef)
    }

    /// The header name, lower case (names compare case-insensitively).
    public var name: StringRef
    /// The comparison.
    public var match: Match

    /// Creates a condition.
    public init(name: StringRef, match: Match) {
        self.name = name
        self.match = match
    }
}

/// What a route does with the requests it matches.
public enum RouteAction: Hashable, Sendable {
    /// Let the request through unchanged.
    case pass
    /// Answer `status` with `headers` and no body (e.g. 404, 405, or 200 for `/v2/`).
    case respond(status: Int32, headers: [Header])
    /// Answer `status` with `Location: <member><path>[?query]`, the member chosen by hashing `hashKey`.
    /// With `verify`, a member is taken only once a presence check (a HEAD of that `Location`)
    /// found the object there; a member without it is skipped like a member that is down, and a
    /// chain with no member left gives the request to the routes that follow.
    case redirect(status: Int32, target: RedirectTarget, path: [TemplatePart], keepQuery: Bool, hashKey: HashKey = .path,
                  verify: Bool = false)
}

/// A response header a `respond` route sets.
public struct Header: Hashable, Sendable, BitwiseCopyable {
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
    /// Request headers it requires (all of them).
    public var headers: [HeaderCondition]
    /// What it does.
    public var action: RouteAction

    /// Creates a route.
    public init(name: StringRef, methods: MethodFilter, path: PathPattern, clients: ClientFilter,
                headers: [HeaderCondition] = [], action: RouteAction) {
        self.name = name
        self.methods = methods
        self.path = path
        self.clients = clients
        self.headers = headers
        self.action = action
    }
}

/// What happens when a redirect's provider has no target (unmatched client, inactive provider, no host).
public enum FallbackAction: Hashable, Sendable {
    /// Serve the request as usual.
    case pass
    /// Redirect to these pools (a class without one passes).
    case redirect(TargetHosts)
}

/// Byte helpers shared by the decision code.
enum Bytes {
    /// Whether two byte ranges are equal.
    @inline(__always)
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        return hasPrefix(a, b)
    }

    /// Whether `bytes` starts with `prefix`.
    @inline(__always)
    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, _ prefix: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= prefix.count else { return false }
        for index in 0..<prefix.count where bytes[index] != prefix[index] { return false }
        return true
    }

    /// Whether `name` equals the lower-case `lowered`, ignoring ASCII case.
    @inline(__always)
    static func equalIgnoringCase(_ name: UnsafeRawBufferPointer, lowered: UnsafeRawBufferPointer) -> Bool {
        guard name.count == lowered.count else { return false }
        for index in 0..<name.count {
            var byte = name[index]
            if byte >= 0x41 && byte <= 0x5a { byte |= 0x20 }
            if byte != lowered[index] { return false }
        }
        return true
    }
}
