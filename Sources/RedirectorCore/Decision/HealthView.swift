/// Which pool members are down, as a decision reads it: one bit per ``PoolMember/slot``.
///
/// A view does not own its memory: a ``HealthState`` (Swift) or an `rdr_health` (C ABI) does, and
/// keeps it alive while decisions use the view. The empty view means "every member is up" — what
/// a decision without health information, or with a missing, stale or corrupt state file, uses.
public struct HealthView: @unchecked Sendable {
    /// Bit `slot` set: member `slot` is down. nil: all up.
    let words: UnsafePointer<UInt64>?
    /// Number of slots the bits cover.
    let slotCount: Int
    /// Of the members down, those a presence check excluded (explanations only), nil: none.
    let missing: UnsafePointer<UInt64>?
    /// Whether routes with `verify` are skipped: the request has made all its presence checks
    /// (``PresenceSettings/maxChecks``) without finding the object.
    public let skipsVerifyingRoutes: Bool

    /// Every member up.
    public static let allUp = HealthView(words: nil, slotCount: 0)

    /// A view of `slotCount` bits at `words`.
    public init(words: UnsafePointer<UInt64>?, slotCount: Int) {
        self.init(words: words, slotCount: slotCount, missing: nil, skipsVerifyingRoutes: false)
    }

    private init(words: UnsafePointer<UInt64>?, slotCount: Int, missing: UnsafePointer<UInt64>?, skipsVerifyingRoutes: Bool) {
        self.words = words
        self.slotCount = slotCount
        self.missing = missing
        self.skipsVerifyingRoutes = skipsVerifyingRoutes
    }

    /// Why a member that ``isDown(_:)`` is not used: down, or missing the object.
    func downReason(_ slot: UInt32) -> SkipReason {
        guard let missing, Int(slot) < slotCount, missing[Int(slot &>> 6)] & (1 &<< UInt64(slot & 63)) != 0 else { return .down }
        return .missing
    }

    /// Whether the member in `slot` is down.
    @inline(__always)
    public func isDown(_ slot: UInt32) -> Bool {
        guard let words, Int(slot) < slotCount else { return false }
        return words[Int(slot &>> 6)] & (1 &<< UInt64(slot & 63)) != 0
    }
}

extension HealthView {
    /// This view with the members in `slots` down as well, during `body`: how a backend decides
    /// again once a presence check found the object missing on a member (``Decision/needsVerification``).
    /// `memberCount` is the policy's (``Policy/memberCount``); slots beyond it are ignored. The
    /// bits live in stack memory for the call (no allocation for pools of a few thousand members).
    /// `skippingVerifyingRoutes`: the request is out of presence checks (``skipsVerifyingRoutes``).
    public func excluding<Slots: Collection<UInt32>, Result>(_ slots: Slots, memberCount: Int, skippingVerifyingRoutes: Bool = false,
                                                             _ body: (HealthView) -> Result) -> Result {
        guard !slots.isEmpty else {
            guard skippingVerifyingRoutes else { return body(self) }
            return body(HealthView(words: words, slotCount: slotCount, missing: missing, skipsVerifyingRoutes: true))
        }
        let count = max(slotCount, memberCount)
        let wordCount = (count &+ 63) / 64
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 &* wordCount) { bits in
            bits.initialize(repeating: 0)
            if let words {
                for index in 0..<((slotCount &+ 63) / 64) { bits[index] = words[index] }
            }
            for slot in slots where Int(slot) < count {
                bits[Int(slot &>> 6)] |= 1 &<< UInt64(slot & 63)
                bits[wordCount &+ Int(slot &>> 6)] |= 1 &<< UInt64(slot & 63)
            }
            let base = UnsafePointer(bits.baseAddress)
            return body(HealthView(words: base, slotCount: count, missing: base.map { $0 + wordCount },
                                   skipsVerifyingRoutes: skippingVerifyingRoutes))
        }
    }
}

/// One request header as a backend passes it to a decision (only the names the policy's routes
/// use, ``Policy/headerNames``, need be passed).
public struct RequestHeader {
    /// Header name, any case.
    public var name: UnsafeRawBufferPointer
    /// Header value.
    public var value: UnsafeRawBufferPointer

    /// Creates a header.
    public init(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.name = name
        self.value = value
    }

    /// Whether header name `name` (any case) is the lower-case `lowered`: how routes compare names.
    @inline(__always)
    public static func name(_ name: UnsafeRawBufferPointer, is lowered: UnsafeRawBufferPointer) -> Bool {
        Bytes.equalIgnoringCase(name, lowered: lowered)
    }
}

/// Why a decision did not choose a pool member.
public enum SkipReason: String, Sendable {
    /// The health state says it is down.
    case down
    /// A member of a preferred (lower) priority was up.
    case priority
    /// Another member of its priority won the object's rendezvous hash.
    case weight
    /// A presence check did not find the object there (absent, or no clear answer).
    case missing
}

/// What a decision considered on its way to a target: for explanations. The decision path uses
/// ``NoDecisionTrace``, which the compiler removes entirely.
public protocol DecisionTrace {
    /// `pool` was considered as step `step` of the fallback chain.
    mutating func considered(pool: PoolRef, step: FallbackStep)
    /// The member with base URL `url` of the pool last considered was not chosen, for `reason`.
    mutating func skipped(url: StringRef, reason: SkipReason)
}

/// The trace of the decision path: records nothing.
public struct NoDecisionTrace: DecisionTrace {
    /// Creates the empty trace.
    @inline(__always) public init() {}
    /// Records nothing.
    @inline(__always) public mutating func considered(pool: PoolRef, step: FallbackStep) {}
    /// Records nothing.
    @inline(__always) public mutating func skipped(url: StringRef, reason: SkipReason) {}
}

/// A trace that keeps everything, for ``DecisionExplanation``.
public struct RecordedDecisionTrace: DecisionTrace {
    /// Pools in the order they were considered, with their step.
    public private(set) var pools: [(pool: PoolRef, step: FallbackStep)] = []
    /// Skipped members with the pool they belong to.
    public private(set) var skips: [(pool: PoolRef, url: StringRef, reason: SkipReason)] = []

    /// An empty trace.
    public init() {}

    /// Records a pool.
    public mutating func considered(pool: PoolRef, step: FallbackStep) { pools.append((pool, step)) }

    /// Records a skipped member of the last pool.
    public mutating func skipped(url: StringRef, reason: SkipReason) {
        skips.append((pools.last?.pool ?? .none, url, reason))
    }
}
