/// A 1-bit binary radix tree over one address family: the structure of NGINX's `geo` module.
///
/// Used as the performance baseline, as a second oracle, and as the intermediate form from which
/// ``PoptrieBuilder`` builds a poptrie. Keys are left-aligned in a `UInt128`.
public struct BinaryRadixTree: PrefixMatcher, Sendable {
    /// The address family.
    public let family: AddressFamily
    /// Children per node (index 0 is the root); -1 when absent.
    private(set) var zero: [Int32] = [-1]
    private(set) var one: [Int32] = [-1]
    /// Packed match (``PackedMatch``) stored at each node; 0 when no prefix ends there.
    private(set) var packed: [UInt32] = [0]

    /// Number of key bits: 32 or 128.
    public var keyBits: Int { family.bitWidth }

    /// An empty tree for `family`.
    public init(family: AddressFamily) {
        self.family = family
    }

    /// Builds a tree from entries of this family; for duplicate prefixes the first entry wins.
    public init(family: AddressFamily, entries: some Sequence<(prefix: IPPrefix, value: UInt32)>) {
        self.init(family: family)
        for entry in entries { insert(entry.prefix, value: entry.value) }
    }

    /// The key of an address, left-aligned; nil for the other family.
    @inline(__always)
    func key(_ address: IPAddress) -> UInt128? {
        switch (address, family) {
        case (.v4(let value), .v4): return UInt128(value) &<< 96
        case (.v6(let value), .v6): return value
        default: return nil
        }
    }

    /// Adds a prefix unless the same prefix is already present (first wins). Other families are ignored.
    /// - Returns: whether the prefix was added.
    @discardableResult
    public mutating func insert(_ prefix: IPPrefix, value: UInt32) -> Bool {
        guard let key = key(prefix.network) else { return false }
        var node = 0
        for depth in 0..<prefix.length {
            let bit = (key &>> UInt128(127 &- depth)) & 1 == 1
            var child = bit ? one[node] : zero[node]
            if child < 0 {
                child = Int32(packed.count)
                zero.append(-1)
                one.append(-1)
                packed.append(0)
                if bit { one[node] = child } else { zero[node] = child }
            }
            node = Int(child)
        }
        guard packed[node] == 0 else { return false }
        packed[node] = PackedMatch.pack(value: value, length: prefix.length)
        return true
    }

    /// Walks the tree bit by bit, remembering the last prefix seen.
    public func longestMatch(_ address: IPAddress) -> PrefixMatch? {
        longestMatch(address, maxLength: keyBits)
    }

    /// The longest match among prefixes at most `maxLength` long: the longest prefix covering the
    /// whole prefix `address/maxLength`.
    public func longestMatch(_ address: IPAddress, maxLength: Int) -> PrefixMatch? {
        guard let key = key(address) else { return nil }
        var node = 0
        var best = packed[0]
        for depth in 0..<max(0, min(keyBits, maxLength)) {
            let child = (key &>> UInt128(127 &- depth)) & 1 == 1 ? one[node] : zero[node]
            guard child >= 0 else { break }
            node = Int(child)
            if packed[node] != 0 { best = packed[node] }
        }
        return PackedMatch.unpack(best, for: address)
    }

    /// Number of nodes, for size reports.
    public var nodeCount: Int { packed.count }
}
