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

/// A poptrie in plain arrays, ready to be written into a snapshot.
///
/// Structure after Asai and Ohara, "Poptrie: A Compressed Trie with Population Count for Fast
/// and Scalable Software IP Routing Table Lookup" (SIGCOMM 2015): a direct-pointing array indexed
/// by the top ``Poptrie/directBits(family:)`` bits, then 6-bit stride nodes with leaf compression.
/// Direct entries with the top bit set point to a node; others are packed leaves (``PackedMatch``).
public struct PoptrieImage: Sendable {
    /// The address family.
    public var family: AddressFamily
    /// `1 << directBits` entries.
    public var direct: [UInt32]
    /// Internal nodes; a node's children always have larger indices than the node.
    public var nodes: [PoptrieNode]
    /// Compressed leaves.
    public var leaves: [UInt32]
}

/// Builds a ``PoptrieImage`` from a ``BinaryRadixTree``.
public enum PoptrieBuilder {
    /// Builds the poptrie of one family's entries; for duplicate prefixes the first entry wins.
    public static func build(family: AddressFamily, entries: some Sequence<(prefix: IPPrefix, value: UInt32)>) -> PoptrieImage {
        build(from: BinaryRadixTree(family: family, entries: entries))
    }

    /// Builds the poptrie equivalent to `tree`.
    public static func build(from tree: BinaryRadixTree) -> PoptrieImage {
        var state = State(tree: tree)
        let directBits = Poptrie.directBits(family: tree.family)
        state.image.direct = [UInt32](repeating: 0, count: 1 << directBits)
        state.fillDirect(node: 0, depth: 0, slot: 0, inherited: 0, directBits: directBits)
        return state.image
    }

    /// One child of a node being built: either a leaf value or a trie node to expand further.
    private enum Child {
        case leaf(UInt32)
        case node(trieNode: Int, inherited: UInt32)
    }

    private struct State {
        let tree: BinaryRadixTree
        var image: PoptrieImage

        init(tree: BinaryRadixTree) {
            self.tree = tree
            self.image = PoptrieImage(family: tree.family, direct: [], nodes: [], leaves: [])
        }

        func hasChildren(_ node: Int) -> Bool { tree.zero[node] >= 0 || tree.one[node] >= 0 }

        /// The inherited value after visiting `node`.
        func inherit(_ node: Int, _ inherited: UInt32) -> UInt32 {
            tree.packed[node] != 0 ? tree.packed[node] : inherited
        }

        mutating func fillDirect(node: Int, depth: Int, slot: Int, inherited: UInt32, directBits: Int) {
            let span = 1 << (directBits - depth)
            guard node >= 0 else {
                for index in slot..<(slot + span) { image.direct[index] = inherited }
                return
            }
            let value = inherit(node, inherited)
            if depth == directBits {
                if hasChildren(node) {
                    let index = image.nodes.count
                    image.nodes.append(PoptrieNode(vector: 0, leafVector: 0, leafBase: 0, nodeBase: 0))
                    buildNode(at: index, trieNode: node, inherited: value)
                    image.direct[slot] = Poptrie.nodeFlag | UInt32(index)
                } else {
                    image.direct[slot] = value
                }
                return
            }
            fillDirect(node: Int(tree.zero[node]), depth: depth + 1, slot: slot, inherited: value, directBits: directBits)
            fillDirect(node: Int(tree.one[node]), depth: depth + 1, slot: slot + span / 2, inherited: value, directBits: directBits)
        }

        /// Expands the 6 levels below `node` into 64 children.
        func expand(_ node: Int, level: Int, position: Int, inherited: UInt32, into children: inout [Child]) {
            guard node >= 0 else {
                let span = 1 << (6 - level)
                for index in (position * span)..<((position + 1) * span) { children[index] = .leaf(inherited) }
                return
            }
            let value = inherit(node, inherited)
            if level == 6 {
                children[position] = hasChildren(node) ? .node(trieNode: node, inherited: value) : .leaf(value)
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
