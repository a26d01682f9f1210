/// Which of a provider's hosts a redirect goes to.
public enum TargetClass: UInt8, Sendable, CaseIterable, BitwiseCopyable {
    /// The OCI registry host (`/v2/…` requests).
    case registry = 0
    /// The artifact (release binaries, blobs) host.
    case artifacts = 1

    /// The config spelling: `registry` or `artifacts`.
    public var name: String { self == .registry ? "registry" : "artifacts" }
}

/// Redirect targets (pools) for one class each; ``PoolRef/none`` means "none".
public struct TargetHosts: Hashable, Sendable, BitwiseCopyable {
    /// Pool of registry requests, e.g. one member `https://registry.example`.
    public var registry: PoolRef
    /// Pool of artifact requests.
    public var artifacts: PoolRef

    /// Creates a pair of targets.
    public init(registry: PoolRef = .none, artifacts: PoolRef = .none) {
        self.registry = registry
        self.artifacts = artifacts
    }

    /// The target for `targetClass`.
    @inline(__always)
    public subscript(targetClass: TargetClass) -> PoolRef {
        targetClass == .registry ? registry : artifacts
    }
}

/// A credit provider: a cloud or network whose clients are sent to its own mirror.
public struct Provider: Hashable, Sendable {
    /// Unique name, e.g. `amazon`.
    public var name: StringRef
    /// Inactive providers still match (and are explained) but never get redirects.
    public var isActive: Bool
    /// Resolves a prefix claimed by several providers: the highest priority wins, then the earliest in the config.
    public var priority: Int32
    /// Targets when no region-specific target applies.
    public var targets: TargetHosts
    /// Region-specific targets; a class left empty falls back to ``targets``.
    public var regionTargets: [RegionTarget]
    /// For each region with a known location: the other regions with targets, nearest first.
    /// Empty unless the provider's fallback chain has the `nearest-region` step.
    public var regionOrders: [RegionOrder]
    /// `nearestRegion: failover`: the nearest-region step applies only to a client whose region
    /// has a pool for the class and none of its members is up (not to regions without a pool).
    public var nearestRegionOnlyOnFailure: Bool

    /// Creates a provider.
    public init(name: StringRef, isActive: Bool = true, priority: Int32 = 0, targets: TargetHosts = TargetHosts(),
                regionTargets: [RegionTarget] = [], regionOrders: [RegionOrder] = [], nearestRegionOnlyOnFailure: Bool = false) {
        self.name = name
        self.isActive = isActive
        self.priority = priority
        self.targets = targets
        self.regionTargets = regionTargets
        self.regionOrders = regionOrders
        self.nearestRegionOnlyOnFailure = nearestRegionOnlyOnFailure
    }
}

/// Targets for the clients of one region of a provider.
public struct RegionTarget: Hashable, Sendable, BitwiseCopyable {
    /// The region, as the provider's ranges name it (`us-east-1`).
    public var region: StringRef
    /// Its targets.
    public var targets: TargetHosts

    /// Creates a region target.
    public init(region: StringRef, targets: TargetHosts) {
        self.region = region
        self.targets = targets
    }
}

/// What a matched prefix says about a client: provider, region and origin AS.
public struct MatchAttributes: Hashable, Sendable {
    /// Provider index, or -1 when the prefix belongs to no provider (e.g. an ASN-only entry).
    public var provider: Int32
    /// Cloud region or scope, empty when unknown.
    public var region: StringRef
    /// Origin AS number, 0 when unknown.
    public var asn: UInt32

    /// Creates attributes.
    public init(provider: Int32, region: StringRef = .empty, asn: UInt32 = 0) {
        self.provider = provider
        self.region = region
        self.asn = asn
    }

    /// Serialized size in a snapshot: provider i16, region index u16, ASN u32.
    public static let byteSize = 8

    /// Reads entry `index` of a validated attribute array, resolving its region through the
    /// validated region table (``StringRef``s of 8 bytes each).
    @inlinable @inline(__always)
    public static func load(from base: UnsafeRawPointer, regions: UnsafeRawPointer, index: UInt32) -> MatchAttributes {
        let entry = base + Int(index) &* 8
        let region = regions + Int(UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) &* 8
        return MatchAttributes(
            provider: Int32(Int16(littleEndian: entry.loadUnaligned(as: Int16.self))),
            region: StringRef(offset: UInt32(littleEndian: region.loadUnaligned(as: UInt32.self)),
                              length: UInt32(littleEndian: region.loadUnaligned(fromByteOffset: 4, as: UInt32.self))),
            asn: UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
    }

    /// The provider of entry `index` of a validated attribute array (no region lookup).
    @inlinable @inline(__always)
    public static func loadProvider(from base: UnsafeRawPointer, index: UInt32) -> Int32 {
        Int32(Int16(littleEndian: (base + Int(index) &* 8).loadUnaligned(as: Int16.self)))
    }
}
