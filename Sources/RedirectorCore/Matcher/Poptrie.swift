/// A read-only poptrie over raw memory (a loaded snapshot or a ``PoptrieImage``'s buffers).
///
/// Lookups read through unsafe pointers with wrapping arithmetic: no bounds checks, no traps and no
/// allocation. That is safe because ``init(family:direct:nodes:leaves:valueCount:)`` validates every
/// index once. The layout constants below are the only place the geometry is written; they are
/// computed properties so that every use folds to an immediate in the lookup loops.
public struct Poptrie: PrefixMatcher, @unchecked Sendable {
    /// The direct-entry flag for "points to a node"; the other 31 bits are the node index.
    @inlinable public static var nodeFlag: UInt32 { 0x8000_0000 }

    /// Bits resolved by one node level (64 children).
    @inlinable public static var strideBits: Int { 6 }

    /// Bits resolved by the direct-pointing array: 18 for IPv4 (1 MiB), 16 for IPv6 (256 KiB).
    /// (16 bits for IPv4 measured worse on the 512k-prefix table: 12.7 instead of 8.7 bytes per
    /// prefix, because every /24 then needs a second node level.)
    @inlinable
    public static func directBits(family: AddressFamily) -> Int { family == .v4 ? 18 : 16 }

    /// Node levels below the direct array: 3 for IPv4, 19 for IPv6.
    @inlinable
    static func levels(family: AddressFamily) -> Int {
        (family.bitWidth - directBits(family: family) + strideBits - 1) / strideBits
    }

    /// The address family.
    public let family: AddressFamily
    @usableFromInline let direct: UnsafePointer<UInt32>
    @usableFromInline let nodes: UnsafeRawPointer
    @usableFromInline let leaves: UnsafePointer<UInt32>
    /// Number of internal nodes.
    public let nodeCount: Int
    /// Number of compressed leaves.
    public let leafCount: Int

    /// Bytes of the direct array, nodes and leaves.
    public var byteCount: Int {
        (4 << Poptrie.directBits(family: family)) + nodeCount * PoptrieNode.byteSize + leafCount * 4
    }

    /// Why a poptrie's memory was rejected.
    public struct ValidationError: Error, CustomStringConvertible {
        /// What is wrong, e.g. "IPv4 node 12 points past the leaf array".
        public let description: String
    }

    /// Wraps validated memory. The memory must outlive the poptrie.
    ///
    /// - Parameters:
    ///   - direct: `1 << directBits(family:)` little-endian `UInt32` entries.
    ///   - nodes: ``PoptrieNode/byteSize``-byte nodes.
    ///   - leaves: little-endian `UInt32` leaves.
    ///   - valueCount: leaves may carry values `0..<valueCount` (the attribute count).
    /// - Throws: ``ValidationError`` when any index could leave the arrays or loop.
    public init(
        family: AddressFamily, direct: UnsafeRawBufferPointer, nodes: UnsafeRawBufferPointer,
        leaves: UnsafeRawBufferPointer, valueCount: Int
    ) throws {
        let name = family.name
        let directCount = 1 << Poptrie.directBits(family: family)
        guard let directBase = direct.baseAddress, direct.count == directCount * 4 else {
            throw ValidationError(description: "\(name) direct array has \(direct.count) bytes, expected \(directCount * 4)")
        }
        guard nodes.count % PoptrieNode.byteSize == 0, leaves.count % 4 == 0 else {
            throw ValidationError(description: "\(name) node or leaf array has a partial entry")
        }
        let nodeCount = nodes.count / PoptrieNode.byteSize
        let leafCount = leaves.count / 4
        let maximumLength = family.bitWidth
        func checkLeaf(_ packed: UInt32, _ place: @autoclosure () -> String) throws {
            guard packed == 0 || (Int(PackedMatch.value(packed)) < valueCount
                && PackedMatch.length(packed) <= maximumLength && packed & Poptrie.nodeFlag == 0) else {
                throw ValidationError(description: "\(name) \(place()) holds an invalid leaf 0x\(String(packed, radix: 16))")
            }
        }
        // Depth of each node: roots (from the direct array) are 1; children must come later and be
        // deeper, so no walk can loop or exceed the levels the key has bits for.
        var depth = [UInt8](repeating: 0, count: nodeCount)
        let levels = Poptrie.levels(family: family)
        for slot in 0..<directCount {
            let entry = UInt32(littleEndian: direct.loadUnaligned(fromByteOffset: slot * 4, as: UInt32.self))
            if entry & Poptrie.nodeFlag != 0 {
                let index = Int(entry & ~Poptrie.nodeFlag)
                guard index < nodeCount else {
                    throw ValidationError(description: "\(name) direct entry \(slot) points past the node array")
                }
                depth[index] = 1
            } else {
                try checkLeaf(entry, "direct entry \(slot)")
            }
        }
        for index in 0..<nodeCount {
            let node = Poptrie.loadNode(nodes, index)
            guard depth[index] > 0 else {
                throw ValidationError(description: "\(name) node \(index) is unreachable or out of order")
            }
            let childCount = node.vector.nonzeroBitCount
            let runCount = node.leafVector.nonzeroBitCount
            let base = Int(node.nodeBase)
            let leafBase = Int(node.leafBase)
            guard childCount == 0 || (base > index && base + childCount <= nodeCount) else {
                throw ValidationError(description: "\(name) node \(index) points outside the node array")
            }
            guard leafBase + runCount <= leafCount else {
                throw ValidationError(description: "\(name) node \(index) points past the leaf array")
            }
            // The first leaf position must start a run, or a lookup there would read before the node's leaves.
            let leafPositions = ~node.vector
            if leafPositions != 0 {
                let first = leafPositions.trailingZeroBitCount
                guard node.leafVector & (1 << UInt64(first)) != 0, node.leafVector & node.vector == 0 else {
                    throw ValidationError(description: "\(name) node \(index) has a malformed leaf vector")
                }
            }
            if childCount > 0 {
                guard Int(depth[index]) < levels else {
                    throw ValidationError(description: "\(name) node \(index) is deeper than an address")
                }
                for child in base..<(base + childCount) {
                    guard depth[child] == 0 else {
                        throw ValidationError(description: "\(name) node \(child) has two parents")
                    }
                    depth[child] = depth[index] + 1
                }
            }
        }
        for index in 0..<leafCount {
            try checkLeaf(UInt32(littleEndian: leaves.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)), "leaf \(index)")
        }
        self.family = family
        self.direct = directBase.assumingMemoryBound(to: UInt32.self)
        self.nodes = nodes.baseAddress ?? directBase
        self.leaves = (leaves.baseAddress ?? directBase).assumingMemoryBound(to: UInt32.self)
        self.nodeCount = nodeCount
        self.leafCount = leafCount
    }

    /// Reads node `index` (little-endian).
    @inline(__always)
    static func loadNode(_ base: UnsafeRawBufferPointer, _ index: Int) -> PoptrieNode {
        let offset = index * PoptrieNode.byteSize
        return PoptrieNode(
            vector: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + PoptrieNode.vectorOffset, as: UInt64.self)),
            leafVector: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + PoptrieNode.leafVectorOffset, as: UInt64.self)),
            leafBase: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + PoptrieNode.leafBaseOffset, as: UInt32.self)),
            nodeBase: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + PoptrieNode.nodeBaseOffset, as: UInt32.self)))
    }

    /// One stride step: the child at `position` (0–63) of node `index`. Returns the leaf when the
    /// child is a leaf; otherwise moves `index` to the child node and returns nil.
    @inlinable @inline(__always)
    func step(_ index: inout Int, _ position: UInt64) -> UInt32? {
        let node = nodes + index &* PoptrieNode.byteSize
        let vector = node.loadUnaligned(fromByteOffset: PoptrieNode.vectorOffset, as: UInt64.self)
        let below = (UInt64(2) &<< position) &- 1
        if vector & (UInt64(1) &<< position) != 0 {
            let base = node.loadUnaligned(fromByteOffset: PoptrieNode.nodeBaseOffset, as: UInt32.self)
            index = Int(truncatingIfNeeded: base) &+ (vector & below).nonzeroBitCount &- 1
            return nil
        }
        let leafVector = node.loadUnaligned(fromByteOffset: PoptrieNode.leafVectorOffset, as: UInt64.self)
        let base = node.loadUnaligned(fromByteOffset: PoptrieNode.leafBaseOffset, as: UInt32.self)
        return leaves[Int(truncatingIfNeeded: base) &+ (leafVector & below).nonzeroBitCount &- 1]
    }

    /// The direct-array slot of an IPv4 address: its top ``directBits(family:)`` bits.
    @inlinable @inline(__always)
    static func directSlot(v4 address: UInt32) -> Int {
        Int(truncatingIfNeeded: address &>> (AddressFamily.v4.bitWidth &- directBits(family: .v4)))
    }

    /// Walks the node levels below direct entry `entry` (which has ``nodeFlag`` set). `key` holds
    /// the address bits after the direct slot, left-aligned in `Key`, so each level's child position
    /// is its top ``strideBits`` bits.
    @inlinable @inline(__always)
    func descend<Key: FixedWidthInteger & UnsignedInteger>(_ entry: UInt32, key: Key, levels: Int) -> UInt32 {
        var index = Int(truncatingIfNeeded: entry & ~Poptrie.nodeFlag)
        var key = key
        for _ in 0..<levels {
            let position = UInt64(truncatingIfNeeded: key &>> (Key.bitWidth &- Poptrie.strideBits))
            if let leaf = step(&index, position) { return leaf }
            key = key &<< Poptrie.strideBits
        }
        return 0
    }

    /// Packed match (``PackedMatch``) for an IPv4 address; 0 when nothing matches.
    @inlinable @inline(__always)
    public func lookup(v4 address: UInt32) -> UInt32 {
        let entry = direct[Poptrie.directSlot(v4: address)]
        if entry & Poptrie.nodeFlag == 0 { return entry }
        // The bits below the direct slot, at the top of a 64-bit key.
        let key = UInt64(truncatingIfNeeded: address) &<< (UInt64.bitWidth &- AddressFamily.v4.bitWidth &+ Poptrie.directBits(family: .v4))
        return descend(entry, key: key, levels: Poptrie.levels(family: .v4))
    }

    /// Packed matches for many IPv4 addresses. Groups of eight first load their direct entries
    /// together, so the cache misses of independent lookups overlap instead of queuing.
    @inlinable
    public func lookup(v4 addresses: UnsafePointer<UInt32>, count: Int, into results: UnsafeMutablePointer<UInt32>) {
        var start = 0
        while start &+ 8 <= count {
            for lane in 0..<8 {
                results[start &+ lane] = direct[Poptrie.directSlot(v4: addresses[start &+ lane])]
            }
            for lane in 0..<8 where results[start &+ lane] & Poptrie.nodeFlag != 0 {
                results[start &+ lane] = lookup(v4: addresses[start &+ lane])
            }
            start &+= 8
        }
        while start < count {
            results[start] = lookup(v4: addresses[start])
            start &+= 1
        }
    }

    /// Packed match (``PackedMatch``) for an IPv6 address; 0 when nothing matches.
    @inlinable @inline(__always)
    public func lookup(v6 address: UInt128) -> UInt32 {
        let directBits = Poptrie.directBits(family: .v6)
        let entry = direct[Int(truncatingIfNeeded: address &>> (UInt128.bitWidth &- directBits))]
        if entry & Poptrie.nodeFlag == 0 { return entry }
        return descend(entry, key: address &<< directBits, levels: Poptrie.levels(family: .v6))
    }

    /// The longest prefix containing `address` and its value (``PrefixMatcher``); nil for no match
    /// or an address of the other family.
    public func longestMatch(_ address: IPAddress) -> PrefixMatch? {
        switch (address, family) {
        case (.v4(let value), .v4): return PackedMatch.unpack(lookup(v4: value), for: address)
        case (.v6(let value), .v6): return PackedMatch.unpack(lookup(v6: value), for: address)
        default: return nil
        }
    }

    /// Every prefix a lookup can return, with its value, sorted: the input prefixes minus those that
    /// more specific prefixes shadow completely. Used by `redirector export` and as a structural check.
    public func visiblePrefixes() -> [PrefixMatch] {
        let keyBits = family.bitWidth
        var found = Set<PrefixMatch>()
        func emit(_ start: UInt128, _ packed: UInt32) {
            guard packed != 0 else { return }
            let address: IPAddress = family == .v4 ? .v4(UInt32(truncatingIfNeeded: start &>> 96)) : .v6(start)
            found.insert(PrefixMatch(prefix: IPPrefix(network: address, length: PackedMatch.length(packed)),
                                     value: PackedMatch.value(packed)))
        }
        func walk(_ index: Int, _ start: UInt128, _ bitOffset: Int) {
            let node = Poptrie.loadNode(UnsafeRawBufferPointer(start: nodes, count: nodeCount * PoptrieNode.byteSize), index)
            let beyond = bitOffset + 6 - keyBits
            for position in 0..<64 {
                if beyond > 0 && position & ((1 << beyond) - 1) != 0 { continue }
                let shift = 122 - bitOffset
                let childStart = start | (shift >= 0 ? UInt128(position) << shift : UInt128(position) >> -shift)
                let mask = (UInt64(2) &<< UInt64(position)) &- 1
                if node.vector & (1 << UInt64(position)) != 0 {
                    walk(Int(node.nodeBase) + (node.vector & mask).nonzeroBitCount - 1, childStart, bitOffset + 6)
                } else {
                    emit(childStart, leaves[Int(node.leafBase) + (node.leafVector & mask).nonzeroBitCount - 1])
                }
            }
        }
        let bits = Poptrie.directBits(family: family)
        for slot in 0..<(1 << bits) {
            let entry = direct[slot]
            let start = UInt128(slot) << (128 - bits)
            if entry & Poptrie.nodeFlag == 0 {
                emit(start, entry)
            } else {
                walk(Int(entry & ~Poptrie.nodeFlag), start, bits)
            }
        }
        return found.sorted { $0.prefix < $1.prefix }
    }
}
