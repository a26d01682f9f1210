/// A reference to a pool of the policy, or to none.
public struct PoolRef: Hashable, Sendable, BitwiseCopyable {
    /// Pool index + 1; 0 means "no pool" (no target).
    public var raw: UInt32

    /// No target.
    public static let none = PoolRef(raw: 0)

    /// The pool at `index` of ``Policy/pools``.
    public init(index: Int) { raw = UInt32(truncatingIfNeeded: index &+ 1) }

    /// Creates a reference from its stored form.
    public init(raw: UInt32) { self.raw = raw }

    /// Whether this is "no target".
    @inline(__always)
    public var isEmpty: Bool { raw == 0 }

    /// The pool's index in ``Policy/pools``, nil for none.
    @inline(__always)
    public var index: Int? { raw == 0 ? nil : Int(raw &- 1) }
}

/// A set of mirrors that serve the same content; a redirect goes to one healthy member.
///
/// A target written as one URL is a pool of one member without a health check, so every target
/// is a pool and the decision has one code path.
public struct Pool: Hashable, Sendable {
    /// The name given in the config; empty for the pool of a single URL.
    public var name: StringRef
    /// Members in config order.
    public var members: [PoolMember]
    /// Where a decision goes when no member is healthy.
    public var fallback: PoolFallback

    /// Creates a pool.
    public init(name: StringRef, members: [PoolMember], fallback: PoolFallback = .chain) {
        self.name = name
        self.members = members
        self.fallback = fallback
    }
}

/// What follows a pool none of whose members is healthy.
public enum PoolFallback: Hashable, Sendable, BitwiseCopyable {
    /// The next step of the chain the pool stands in (another region, the provider, the default, pass).
    case chain
    /// This pool (then its own fallback).
    case pool(PoolRef)
    /// Serve the request from the origin.
    case pass
}

/// One mirror of a pool.
public struct PoolMember: Hashable, Sendable {
    /// Base URL of redirects to it.
    public var url: StringRef
    /// Share of the objects among members of equal priority (≥ 1).
    public var weight: UInt32
    /// Lower values are preferred: members of a higher number get requests only when every
    /// member of a lower number is down.
    public var priority: Int32
    /// Rendezvous-hash seed (derived from the URL at compile time, so every backend agrees).
    public var seed: UInt64
    /// Its slot in health states: members are numbered across all pools in order.
    public var slot: UInt32
    /// How the prober checks it; nil when it is never checked (always up).
    public var health: HealthCheck?

    /// Creates a member.
    public init(url: StringRef, weight: UInt32 = 1, priority: Int32 = 0, seed: UInt64, slot: UInt32, health: HealthCheck? = nil) {
        self.url = url
        self.weight = weight
        self.priority = priority
        self.seed = seed
        self.slot = slot
        self.health = health
    }
}

/// An HTTP health check of one member.
public struct HealthCheck: Hashable, Sendable {
    /// The URL probed.
    public var url: StringRef
    /// `GET` or `HEAD`.
    public var method: StringRef
    /// Time between probes, milliseconds.
    public var intervalMilliseconds: UInt32
    /// Time a probe may take, milliseconds.
    public var timeoutMilliseconds: UInt32
    /// Consecutive successes that bring a down member up.
    public var rise: UInt8
    /// Consecutive failures that take an up member down.
    public var fall: UInt8
    /// Statuses that count as success; empty means 200–399.
    public var expectedStatuses: [UInt16]

    /// Creates a health check.
    public init(url: StringRef, method: StringRef, intervalMilliseconds: UInt32, timeoutMilliseconds: UInt32,
                rise: UInt8, fall: UInt8, expectedStatuses: [UInt16]) {
        self.url = url
        self.method = method
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.rise = rise
        self.fall = fall
        self.expectedStatuses = expectedStatuses
    }

    /// Whether `status` is a success.
    public func accepts(status: Int) -> Bool {
        HealthCheck.accepts(status: status, expected: expectedStatuses)
    }

    /// Whether `status` is a success for a check expecting `expected` (empty: 200–399).
    public static func accepts(status: Int, expected: [UInt16]) -> Bool {
        expected.isEmpty ? (200...399).contains(status) : expected.contains { Int($0) == status }
    }
}

/// Which step of the fallback chain a redirect came from.
public enum FallbackStep: Int32, Sendable, CaseIterable {
    /// The decision redirected nothing (or the route does not redirect).
    case none = 0
    /// A member of the first pool the chain has for the client: nothing failed over.
    case primary = 1
    /// A member of the pool a down pool names as its fallback.
    case poolFallback = 2
    /// A member of the pool of another region of the client's provider, the nearest with one
    /// up (the client's region has no pool for the class, or none of its members is up).
    case nearestRegion = 3
    /// A member of the provider's pool for all regions, after the region's pools were down.
    case provider = 4
    /// A member of the policy's default pool for the class, after the provider's were down.
    case globalDefault = 5
    /// Every step was exhausted: the request passes to the origin.
    case pass = 6

    /// The name in explanations, metrics and NGINX variables.
    public var name: String {
        switch self {
        case .none: return "-"
        case .primary: return "primary"
        case .poolFallback: return "pool-fallback"
        case .nearestRegion: return "nearest-region"
        case .provider: return "provider"
        case .globalDefault: return "default"
        case .pass: return "pass"
        }
    }
}

/// The regions of a provider ordered by distance from one region, for the `nearest-region` step.
public struct RegionOrder: Hashable, Sendable {
    /// The client's region.
    public var region: StringRef
    /// Indices into ``Provider/regionTargets``, nearest first, without the region itself.
    public var nearest: [UInt16]

    /// Creates an order.
    public init(region: StringRef, nearest: [UInt16]) {
        self.region = region
        self.nearest = nearest
    }
}

extension PoolMember {
    /// The rendezvous seed of a member with base URL `url`: every backend derives it the same way.
    public static func seed(url: UnsafeRawBufferPointer) -> UInt64 {
        XXHash64.hash(url, seed: 0x5244_524d_454d_4252)  // "RDRMEMBR"
    }

    /// A member's rendezvous cost for an object whose key hashed to `key`: -ln(u) / weight, u
    /// uniform in (0, 1) from the key and the member's seed (the weight given as its inverse, so
    /// the decision path multiplies). The lowest cost wins — the highest weight / -ln(u) score of
    /// weighted rendezvous hashing — so a member's share of objects is its share of the weights,
    /// and removing a member moves only the objects it had.
    @inline(__always)
    static func rendezvousCost(key: UInt64, seed: UInt64, inverseWeight: Double) -> Double {
        var mixed = key ^ seed  // splitmix64 finalizer: the seed decorrelates members
        mixed = (mixed ^ (mixed &>> 30)) &* 0xbf58_476d_1ce4_e5b9
        mixed = (mixed ^ (mixed &>> 27)) &* 0x94d0_49bb_1331_11eb
        mixed ^= mixed &>> 31
        return -PoolMember.naturalLog(ofFraction: mixed) * inverseWeight
    }

    /// ln(u) for u = (bits >> 11 + 0.5) / 2^53, uniform in (0, 1), in plain arithmetic (so every
    /// platform's backend computes the same scores; libm's `log` may differ in the last bit
    /// between C libraries) and faster than `log`. Relative error below 1e-9, far below
    /// what a weight can express.
    @inline(__always)
    static func naturalLog(ofFraction bits: UInt64) -> Double {
        let uniform = (Double(bits &>> 11) + 0.5) * 0x1p-53
        // uniform = m · 2^e with m in [√½, √2): ln = e·ln 2 + ln m, and ln m = 2 atanh((m-1)/(m+1)),
        // whose series converges fast for |t| < 0.172 — and near u = 1 (e = 0, m = u) keeps its
        // relative precision, where m in [1, 2) would cancel -ln 2 against ln m ≈ ln 2.
        let pattern = uniform.bitPattern
        var exponent = Double(Int((pattern &>> 52) & 0x7ff) &- 1023)
        var mantissa = Double(bitPattern: (pattern & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000)
        if mantissa > 1.414_213_562_373_095 {
            mantissa *= 0.5
            exponent += 1
        }
        let t = (mantissa - 1) / (mantissa + 1)
        let t2 = t * t
        let series = t * (2 + t2 * (2.0 / 3 + t2 * (2.0 / 5 + t2 * (2.0 / 7 + t2 * (2.0 / 9 + t2 * (2.0 / 11))))))
        return exponent * 0.693_147_180_559_945_3 + series
    }
}

/// Collects a policy's pools; a target written as one URL becomes a one-member pool, shared by
/// every place that names the same URL (one mirror, one slot in health states).
public struct PoolListBuilder: Sendable {
    /// The pools so far, in ``Policy/pools`` order.
    public private(set) var pools: [Pool] = []
    private var singles: [StringRef: PoolRef] = [:]

    /// An empty list.
    public init() {}

    /// Appends `pool`.
    public mutating func add(_ pool: Pool) -> PoolRef {
        pools.append(pool)
        return PoolRef(index: pools.count - 1)
    }

    /// The one-member pool of `url` (a validated base URL), added on first use.
    public mutating func single(_ url: String, strings: inout StringTableBuilder) -> PoolRef {
        let reference = strings.intern(url)
        if let existing = singles[reference] { return existing }
        let seed = Array(url.utf8).withUnsafeBytes { PoolMember.seed(url: $0) }
        let pool = add(Pool(name: .empty, members: [PoolMember(url: reference, seed: seed, slot: 0)]))
        singles[reference] = pool
        return pool
    }
}
