/// A read-only poptrie over raw memory (a mapped snapshot or a ``PoptrieImage``'s buffers).
///
/// Lookups read through unsafe pointers with wrapping arithmetic: no bounds checks, no traps and no
/// allocation. That is safe because ``init(family:direct:nodes:leaves:)`` validates every index once.
public struct Poptrie: @unchecked Sendable {
    /// The direct-entry flag for "points to a node".
    public static let nodeFlag: UInt32 = 0x8000_0000

    /// Bits resolved by the direct-pointing array: 18 for IPv4 (1 MiB), 16 for IPv6 (256 KiB).
    /// (16 bits for IPv4 measured worse on the 512k-prefix table: 12.7 instead of 8.7 bytes per
    /// prefix, because every /24 then needs a second node level.)
    public static func directBits(family: Int) -> Int { family == 4 ? 18 : 16 }

    /// Stride levels below the direct array: 3 for IPv4, 19 for IPv6.
    static func levels(family: Int) -> Int {
        let remaining = (family == 4 ? 32 : 128) - directBits(family: family)
        return (remaining + 5) / 6
    }

    /// The address family: 4 or 6.
    public let family: Int
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
        family: Int, direct: UnsafeRawBufferPointer, nodes: UnsafeRawBufferPointer,
        leaves: UnsafeRawBufferPointer, valueCount: Int
    ) throws {
        let name = family == 4 ? "IPv4" : "IPv6"
        let directCount = 1 << Poptrie.directBits(family: family)
        guard let directBase = direct.baseAddress, direct.count == directCount * 4 else {
            throw ValidationError(description: "\(name) direct array has \(direct.count) bytes, expected \(directCount * 4)")
        }
        guard nodes.count % PoptrieNode.byteSize == 0, leaves.count % 4 == 0 else {
            throw ValidationError(description: "\(name) node or leaf array has a partial entry")
        }
        let nodeCount = nodes.count / PoptrieNode.byteSize
        let leafCount = leaves.count / 4
        let maximumLength = family == 4 ? 32 : 128
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
            vector: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
            leafVector: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)),
            leafBase: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self)),
            nodeBase: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self)))
    }

    /// One stride step: the child at `position` (0–63) of node `index`. Returns the leaf when the
    /// child is a leaf; otherwise moves `index` to the child node and returns nil.
    @inlinable @inline(__always)
    func step(_ index: inout Int, _ position: UInt64) -> UInt32? {
        let node = nodes + index &* 24
        let vector = node.loadUnaligned(as: UInt64.self)
        let below = (UInt64(2) &<< position) &- 1
        if vector & (UInt64(1) &<< position) != 0 {
            let base = node.loadUnaligned(fromByteOffset: 20, as: UInt32.self)
            index = Int(truncatingIfNeeded: base) &+ (vector & below).nonzeroBitCount &- 1
            return nil
        }
        let leafVector = node.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let base = node.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
        return leaves[Int(truncatingIfNeeded: base) &+ (leafVector & below).nonzeroBitCount &- 1]
    }

    /// Packed match (``PackedMatch``) for an IPv4 address; 0 when nothing matches.
    @inlinable @inline(__always)
    public func lookup(v4 address: UInt32) -> UInt32 {
        let entry = direct[Int(truncatingIfNeeded: address &>> 14)]
        if entry & 0x8000_0000 == 0 { return entry }
        var index = Int(truncatingIfNeeded: entry & 0x7fff_ffff)
        var key = UInt64(truncatingIfNeeded: address) &<< 50
        for _ in 0..<3 {
            if let leaf = step(&index, key &>> 58) { return leaf }
            key = key &<< 6
        }
        return 0
    }

    /// Packed matches for many IPv4 addresses. Groups of eight first load their direct entries
    /// together, so the cache misses of independent lookups overlap instead of queuing.
    @inlinable
    public func lookup(v4 addresses: UnsafePointer<UInt32>, count: Int, into results: UnsafeMutablePointer<UInt32>) {
        var start = 0
        while start &+ 8 <= count {
            for lane in 0..<8 {
                results[start &+ lane] = direct[Int(truncatingIfNeeded: addresses[start &+ lane] &>> 14)]
            }
            for lane in 0..<8 where results[start &+ lane] & 0x8000_0000 != 0 {
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
        let entry = direct[Int(truncatingIfNeeded: address &>> 112)]
        if entry & 0x8000_0000 == 0 { return entry }
        var index = Int(truncatingIfNeeded: entry & 0x7fff_ffff)
        var key = address &<< 16
        for _ in 0..<19 {
            if let leaf = step(&index, UInt64(truncatingIfNeeded: key &>> 122)) { return leaf }
            key = key &<< 6
        }
        return 0
    }

    /// Every prefix a lookup can return, with its value, sorted: the input prefixes minus those that
    /// more specific prefixes shadow completely. Used by `redirector export` and as a structural check.
    public func visiblePrefixes() -> [PrefixMatch] {
        let keyBits = family == 4 ? 32 : 128
        var found = Set<PrefixMatch>()
        func emit(_ start: UInt128, _ packed: UInt32) {
            guard packed != 0 else { return }
            let address: IPAddress = family == 4 ? .v4(UInt32(truncatingIfNeeded: start &>> 96)) : .v6(start)
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
