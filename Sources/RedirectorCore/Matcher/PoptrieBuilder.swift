/// One internal poptrie node: a 6-bit stride with popcount-compressed children.
///
/// Bit `i` of `vector` is set when child `i` is an internal node; bit `i` of `leafVector` is set
/// where a run of equal leaves starts (runs skip over internal children, so a leaf value split only
/// by a deeper node is stored once). Children nodes live at `nodeBase…`, leaves at `leafBase…`,
/// each in position order, so a child's slot is a popcount away. 24 bytes, stored little-endian.
public struct PoptrieNode: Hashable, Sendable {
    /// Which of the 64 children are internal nodes.
    public var vector: UInt64
    /// Where runs of identical leaves start among the 64 children.
    public var leafVector: UInt64
    /// Index of this node's first leaf in the leaf array.
    public var leafBase: UInt32
    /// Index of this node's first child node in the node array.
    public var nodeBase: UInt32

    /// The size of a node in a snapshot.
    @inlinable public static var byteSize: Int { 24 }
    /// Byte offsets of the fields in a stored node.
    @inlinable static var vectorOffset: Int { 0 }
    @inlinable static var leafVectorOffset: Int { 8 }
    @inlinable static var leafBaseOffset: Int { 16 }
    @inlinable static var nodeBaseOffset: Int { 20 }
}

/// What a poptrie's 32-bit leaves hold (0 always means "no prefix covers the address").
public enum PoptrieLeaf: Hashable, Sendable {
    /// The matched entry's value + 1, values below `valueCount`: the decision trie. Leaves carry
    /// no prefix length, so runs of equal answers compress fully.
    case answer(valueCount: Int)
    /// The matched prefix's length + 1: the explanation trie beside an answer trie.
    case length
    /// ``PackedMatch`` (value and length in one word): snapshot format 1's matcher, kept one
    /// release so the benchmark can run it beside the answer trie.
    case packed(valueCount: Int)

    /// The leaf for a ``BinaryRadixTree`` node's packed match.
    @inline(__always)
    func encode(_ packed: UInt32) -> UInt32 {
        guard packed != 0 else { return 0 }
        switch self {
        case .answer: return PackedMatch.value(packed) &+ 1
        case .length: return UInt32(PackedMatch.length(packed)) &+ 1
        case .packed: return packed
        }
    }

    /// Whether `leaf` can be a leaf of this kind in a trie of `family`.
    func isValid(_ leaf: UInt32, family: AddressFamily) -> Bool {
        guard leaf != 0 else { return true }
        switch self {
        case .answer(let valueCount): return Int(leaf) <= valueCount
        case .length: return Int(leaf) <= family.bitWidth + 1
        case .packed(let valueCount):
            return Int(PackedMatch.value(leaf)) < valueCount && PackedMatch.length(leaf) <= family.bitWidth
        }
    }

    /// "answer", "length" or "packed", for messages.
    public var name: String {
        switch self {
        case .answer: return "answer"
        case .length: return "length"
        case .packed: return "packed"
        }
    }
}

/// A poptrie in plain arrays, ready to be written into a snapshot.
///
/// Structure after Asai and Ohara, "Poptrie: A Compressed Trie with Population Count for Fast
/// and Scalable Software IP Routing Table Lookup" (SIGCOMM 2015): a direct-pointing array indexed
/// by the top `directBits` bits, then 6-bit stride nodes with leaf compression. Direct entries
/// with the top bit set point to a node; others are leaves (``PoptrieLeaf``).
public struct PoptrieImage: Sendable {
    /// The address family.
    public var family: AddressFamily
    /// What the leaves hold.
    public var leafKind: PoptrieLeaf
    /// `1 << directBits` entries.
    public var direct: [UInt32]
    /// Internal nodes; a node's children always have larger indices than the node.
    public var nodes: [PoptrieNode]
    /// Compressed leaves.
    public var leaves: [UInt32]

    /// The three arrays as little-endian bytes, as a snapshot stores them.
    public func serialized() -> (direct: [UInt8], nodes: [UInt8], leaves: [UInt8]) {
        var direct = ByteWriter()
        for entry in self.direct { direct.write(entry) }
        var nodes = ByteWriter()
        for node in self.nodes {
            nodes.write(node.vector)
            nodes.write(node.leafVector)
            nodes.write(node.leafBase)
            nodes.write(node.nodeBase)
        }
        var leaves = ByteWriter()
        for leaf in self.leaves { leaves.write(leaf) }
        return (direct.bytes, nodes.bytes, leaves.bytes)
    }
}

/// The two tries of one family: answers for decisions, prefix lengths for explanations.
public struct PoptrieMatcherImage: Sendable {
    /// Leaves: attribute index + 1.
    public var answers: PoptrieImage
    /// Leaves: matched prefix length + 1.
    public var lengths: PoptrieImage
}

/// Builds poptries from a ``BinaryRadixTree``.
public enum PoptrieBuilder {
    /// The direct-array width of explanation (length) tries: they are consulted only when a
    /// prefix is asked for, so they trade a level of nodes for a smaller direct array.
    public static let lengthDirectBits = 16

    /// Builds the answer and length tries of one family's entries (values below `valueCount`);
    /// for duplicate prefixes the first entry wins.
    public static func build(family: AddressFamily, entries: some Sequence<(prefix: IPPrefix, value: UInt32)>,
                             valueCount: Int) -> PoptrieMatcherImage {
        let tree = BinaryRadixTree(family: family, entries: entries)
        return PoptrieMatcherImage(
            answers: build(from: tree, leaves: .answer(valueCount: valueCount), directBits: Poptrie.directBits(family: family)),
            lengths: build(from: tree, leaves: .length, directBits: lengthDirectBits))
    }

    /// Builds the poptrie equivalent to `tree` with `leaves` leaves and a direct array of
    /// `directBits` (in ``Poptrie/directBitsRange``). A subtree whose every address has one leaf
    /// becomes that leaf, not a node (more-specific prefixes with their parent's answer cost nothing).
    public static func build(from tree: BinaryRadixTree, leaves: PoptrieLeaf, directBits: Int) -> PoptrieImage {
        var state = State(tree: tree, leafKind: leaves)
        state.image.direct = [UInt32](repeating: 0, count: 1 << directBits)
        state.fillDirect(node: 0, depth: 0, slot: 0, inherited: 0, directBits: directBits)
        return state.image
    }

    /// One child of a node being built: either a leaf or a trie node to expand further.
    private enum Child {
        case leaf(UInt32)
        case node(trieNode: Int, inherited: UInt32)
    }

    /// The leaves a radix subtree's prefixes give (below its root).
    private enum Descendants: Equatable {
        case none
        case one(UInt32)
        case several

        mutating func add(_ other: Descendants) {
            switch (self, other) {
            case (_, .none): break
            case (.none, _): self = other
            case (.one(let a), .one(let b)) where a == b: break
            default: self = .several
            }
        }
    }

    private struct State {
        let tree: BinaryRadixTree
        let leafKind: PoptrieLeaf
        var image: PoptrieImage
        /// For each radix node, the leaves of the prefixes strictly below it.
        let descendants: [Descendants]

        init(tree: BinaryRadixTree, leafKind: PoptrieLeaf) {
            self.tree = tree
            self.leafKind = leafKind
            self.image = PoptrieImage(family: tree.family, leafKind: leafKind, direct: [], nodes: [], leaves: [])
            // Children always have larger indices than their parent, so one backward pass suffices.
            var descendants = [Descendants](repeating: .none, count: tree.packed.count)
            for node in stride(from: tree.packed.count - 1, through: 0, by: -1) {
                for child in [tree.zero[node], tree.one[node]] where child >= 0 {
                    let child = Int(child)
                    if tree.packed[child] != 0 { descendants[node].add(.one(leafKind.encode(tree.packed[child]))) }
                    descendants[node].add(descendants[child])
                }
            }
            self.descendants = descendants
        }

        func hasChildren(_ node: Int) -> Bool { tree.zero[node] >= 0 || tree.one[node] >= 0 }

        /// The inherited packed match after visiting `node`.
        func inherit(_ node: Int, _ inherited: UInt32) -> UInt32 {
            tree.packed[node] != 0 ? tree.packed[node] : inherited
        }

        /// What a region rooted at `node` (with `value` already inherited) becomes: one leaf when
        /// every address in it has the same leaf, else a node to build.
        func child(_ node: Int, value: UInt32) -> Child {
            let leaf = leafKind.encode(value)
            guard hasChildren(node) else { return .leaf(leaf) }
            switch descendants[node] {
            case .none: return .leaf(leaf)
            case .one(let below) where below == leaf: return .leaf(leaf)
            default: return .node(trieNode: node, inherited: value)
            }
        }

        mutating func fillDirect(node: Int, depth: Int, slot: Int, inherited: UInt32, directBits: Int) {
            let span = 1 << (directBits - depth)
            guard node >= 0 else {
                let leaf = leafKind.encode(inherited)
                for index in slot..<(slot + span) { image.direct[index] = leaf }
                return
            }
            let value = inherit(node, inherited)
            if depth == directBits {
                switch child(node, value: value) {
                case .leaf(let leaf):
                    image.direct[slot] = leaf
                case .node(let trieNode, let inherited):
                    let index = image.nodes.count
                    image.nodes.append(PoptrieNode(vector: 0, leafVector: 0, leafBase: 0, nodeBase: 0))
                    buildNode(at: index, trieNode: trieNode, inherited: inherited)
                    image.direct[slot] = Poptrie.nodeFlag | UInt32(index)
                }
                return
            }
            fillDirect(node: Int(tree.zero[node]), depth: depth + 1, slot: slot, inherited: value, directBits: directBits)
            fillDirect(node: Int(tree.one[node]), depth: depth + 1, slot: slot + span / 2, inherited: value, directBits: directBits)
        }

        /// Expands the ``Poptrie/strideBits`` levels below `node` into 64 children.
        func expand(_ node: Int, level: Int, position: Int, inherited: UInt32, into children: inout [Child]) {
            guard node >= 0 else {
                let span = 1 << (Poptrie.strideBits - level)
                let leaf = leafKind.encode(inherited)
                for index in (position * span)..<((position + 1) * span) { children[index] = .leaf(leaf) }
                return
            }
            let value = inherit(node, inherited)
            if level == Poptrie.strideBits {
                children[position] = child(node, value: value)
                return
            }
            expand(Int(tree.zero[node]), level: level + 1, position: position * 2, inherited: value, into: &children)
            expand(Int(tree.one[node]), level: level + 1, position: position * 2 + 1, inherited: value, into: &children)
        }

        mutating func buildNode(at index: Int, trieNode: Int, inherited: UInt32) {
            var children = [Child](repeating: .leaf(0), count: 64)
            expand(trieNode, level: 0, position: 0, inherited: inherited, into: &children)
            var vector: UInt64 = 0
            var leafVector: UInt64 = 0
            let leafBase = image.leaves.count
            var innerNodes: [(trieNode: Int, inherited: UInt32)] = []
            var previousLeaf: UInt32?
            for (position, child) in children.enumerated() {
                switch child {
                case .node(let node, let value):
                    vector |= 1 << UInt64(position)
                    innerNodes.append((node, value))
                case .leaf(let value):
                    if previousLeaf != value {
                        leafVector |= 1 << UInt64(position)
                        image.leaves.append(value)
                    }
                    previousLeaf = value
                }
            }
            let nodeBase = image.nodes.count
            image.nodes.append(contentsOf: repeatElement(PoptrieNode(vector: 0, leafVector: 0, leafBase: 0, nodeBase: 0), count: innerNodes.count))
            image.nodes[index] = PoptrieNode(
                vector: vector, leafVector: leafVector, leafBase: UInt32(leafBase), nodeBase: UInt32(nodeBase))
            for (offset, child) in innerNodes.enumerated() {
                buildNode(at: nodeBase + offset, trieNode: child.trieNode, inherited: child.inherited)
            }
        }
    }
}
