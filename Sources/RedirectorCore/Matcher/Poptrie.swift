/// A read-only poptrie over raw memory (a loaded snapshot or a ``PoptrieImage``'s buffers): one
/// 32-bit leaf per address, whose meaning ``PoptrieLeaf`` gives (``PoptrieMatcher`` pairs an answer
/// trie with a prefix-length trie).
///
/// Lookups read through unsafe pointers with wrapping arithmetic: no bounds checks, no traps and no
/// allocation. That is safe because ``init(family:direct:nodes:leaves:leafKind:)`` validates every
/// index once. The layout constants below are the only place the geometry is written; the
/// direct-array width is read from the array (answer and length tries differ) and kept with the
/// level count it implies, so a lookup does no arithmetic beyond its shifts.
public struct Poptrie: @unchecked Sendable {
    /// The direct-entry flag for "points to a node"; the other 31 bits are the node index.
    @inlinable public static var nodeFlag: UInt32 { 0x8000_0000 }

    /// Bits resolved by one node level (64 children).
    @inlinable public static var strideBits: Int { 6 }

    /// The widths a direct-pointing array may have (validated when memory is wrapped).
    public static let directBitsRange = 8...24

    /// Bits resolved by the direct-pointing array of the decision tries: 18 for IPv4 (1 MiB) and
    /// 16 for IPv6 (256 KiB). (16 bits for IPv4 measured worse on the 512k-prefix table: 12.7
    /// instead of 8.7 bytes per prefix, because every /24 then needs a second node level. For
    /// IPv6, 20 bits measured 20% faster on the pyasn table but add 4 MiB to every snapshot:
    /// `RedirectorMatcherBenchmark` shows both.)
    @inlinable
    public static func directBits(family: AddressFamily) -> Int { family == .v4 ? 18 : 16 }

    /// Node levels below a direct array of `directBits`: 3 for IPv4 with 18, 19 for IPv6 with 16.
    @inlinable
    static func levels(family: AddressFamily, directBits: Int) -> Int {
        (family.bitWidth - directBits + strideBits - 1) / strideBits
    }

    /// The address family.
    public let family: AddressFamily
    /// Bits this trie's direct array resolves (its entry count is `1 << directBits`).
    public let directBits: Int
    /// Node levels below the direct array (the longest walk a lookup can take).
    public let nodeLevels: Int
    /// What its leaves hold.
    public let leafKind: PoptrieLeaf
    @usableFromInline let direct: UnsafePointer<UInt32>
    @usableFromInline let nodes: UnsafeRawPointer
    @usableFromInline let leaves: UnsafePointer<UInt32>
    /// Number of internal nodes.
    public let nodeCount: Int
    /// Number of compressed leaves.
    public let leafCount: Int

    /// Bytes of the direct array, nodes and leaves.
    public var byteCount: Int {
        (4 << directBits) + nodeCount * PoptrieNode.byteSize + leafCount * 4
    }

    /// Why a poptrie's memory was rejected.
    public struct ValidationError: Error, CustomStringConvertible {
        /// What is wrong, e.g. "IPv4 node 12 points past the leaf array".
        public let description: String
    }

    /// Wraps validated memory. The memory must outlive the poptrie.
    ///
    /// - Parameters:
    ///   - direct: `1 << directBits` little-endian `UInt32` entries, `directBits` in ``directBitsRange``.
    ///   - nodes: ``PoptrieNode/byteSize``-byte nodes.
    ///   - leaves: little-endian `UInt32` leaves.
    ///   - leafKind: what the leaves hold, and so which leaf values are valid.
    /// - Throws: ``ValidationError`` when any index could leave the arrays or loop, or a leaf is invalid.
    public init(
        family: AddressFamily, direct: UnsafeRawBufferPointer, nodes: UnsafeRawBufferPointer,
        leaves: UnsafeRawBufferPointer, leafKind: PoptrieLeaf
    ) throws {
        let name = "\(family.name) \(leafKind.name)"
        let directCount = direct.count / 4
        let directBits = directCount.trailingZeroBitCount
        guard let directBase = direct.baseAddress, direct.count % 4 == 0, directCount.nonzeroBitCount == 1,
              Poptrie.directBitsRange.contains(directBits), directBits < family.bitWidth else {
            throw ValidationError(description: "\(name) direct array has \(direct.count) bytes, not 4 × 2^k for k in \(Poptrie.directBitsRange)")
        }
        guard nodes.count % PoptrieNode.byteSize == 0, leaves.count % 4 == 0 else {
            throw ValidationError(description: "\(name) node or leaf array has a partial entry")
        }
        let nodeCount = nodes.count / PoptrieNode.byteSize
        let leafCount = leaves.count / 4
        func checkLeaf(_ leaf: UInt32, _ place: @autoclosure () -> String) throws {
            guard leaf & Poptrie.nodeFlag == 0, leafKind.isValid(leaf, family: family) else {
                throw ValidationError(description: "\(name) \(place()) holds an invalid leaf 0x\(String(leaf, radix: 16))")
            }
        }
        // Depth of each node: roots (from the direct array) are 1; children must come later and be
        // deeper, so no walk can loop or exceed the levels the key has bits for.
        var depth = [UInt8](repeating: 0, count: nodeCount)
        let levels = Poptrie.levels(family: family, directBits: directBits)
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
        self.directBits = directBits
        self.nodeLevels = levels
        self.leafKind = leafKind
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

    /// The direct-array slot of an IPv4 address: its top ``directBits`` bits.
    @inlinable @inline(__always)
    func directSlot(v4 address: UInt32) -> Int {
        Int(truncatingIfNeeded: address &>> UInt32(truncatingIfNeeded: AddressFamily.v4.bitWidth &- directBits))
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

    /// The leaf for an IPv4 address (see ``leafKind``); 0 when nothing matches.
    @inlinable @inline(__always)
    public func lookup(v4 address: UInt32) -> UInt32 {
        let entry = direct[directSlot(v4: address)]
        if entry & Poptrie.nodeFlag == 0 { return entry }
        // The bits below the direct slot, at the top of a 64-bit key.
        let key = UInt64(truncatingIfNeeded: address) &<< UInt64(truncatingIfNeeded: UInt64.bitWidth &- AddressFamily.v4.bitWidth &+ directBits)
        return descend(entry, key: key, levels: nodeLevels)
    }

    /// The leaf for an IPv6 address (see ``leafKind``); 0 when nothing matches.
    @inlinable @inline(__always)
    public func lookup(v6 address: UInt128) -> UInt32 {
        let entry = direct[Int(truncatingIfNeeded: address &>> UInt128(truncatingIfNeeded: UInt128.bitWidth &- directBits))]
        if entry & Poptrie.nodeFlag == 0 { return entry }
        return descend(entry, key: address &<< UInt128(truncatingIfNeeded: directBits), levels: nodeLevels)
    }

    /// The leaf for `address`; 0 for no match or an address of the other family.
    @inlinable @inline(__always)
    public func lookup(_ address: IPAddress) -> UInt32 {
        switch (address, family) {
        case (.v4(let value), .v4): return lookup(v4: value)
        case (.v6(let value), .v6): return lookup(v6: value)
        default: return 0
        }
    }

    /// The trie's answer over the whole address space: the start of every stretch of addresses
    /// with one leaf, in address order, left-aligned in 128 bits (consecutive stretches may share
    /// a leaf). Used to enumerate what a table answers (exports, structural checks).
    public func runs() -> [(start: UInt128, leaf: UInt32)] {
        let keyBits = family.bitWidth
        var found: [(start: UInt128, leaf: UInt32)] = []
        let nodeBytes = UnsafeRawBufferPointer(start: nodes, count: nodeCount * PoptrieNode.byteSize)
        func walk(_ index: Int, _ start: UInt128, _ bitOffset: Int) {
            let node = Poptrie.loadNode(nodeBytes, index)
            // Positions whose low bits lie beyond the key (IPv4's last level) repeat their neighbour.
            let beyond = bitOffset + Poptrie.strideBits - keyBits
            for position in 0..<64 {
                if beyond > 0 && position & ((1 << beyond) - 1) != 0 { continue }
                let shift = 128 - Poptrie.strideBits - bitOffset
                let childStart = start | (shift >= 0 ? UInt128(position) << shift : UInt128(position) >> -shift)
                let mask = (UInt64(2) &<< UInt64(position)) &- 1
                if node.vector & (1 << UInt64(position)) != 0 {
                    walk(Int(node.nodeBase) + (node.vector & mask).nonzeroBitCount - 1, childStart, bitOffset + Poptrie.strideBits)
                } else {
                    found.append((childStart, leaves[Int(node.leafBase) + (node.leafVector & mask).nonzeroBitCount - 1]))
                }
            }
        }
        for slot in 0..<(1 << directBits) {
            let entry = direct[slot]
            let start = UInt128(slot) << (128 - directBits)
            if entry & Poptrie.nodeFlag == 0 {
                found.append((start, entry))
            } else {
                walk(Int(entry & ~Poptrie.nodeFlag), start, directBits)
            }
        }
        return found
    }
}
