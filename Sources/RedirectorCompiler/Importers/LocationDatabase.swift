import RedirectorCore

/// A reader of the IPFire location database (`location.db`, libloc's format version 1), written
/// from the format's description: an 8-byte magic (`LOCDBXX` and the version byte), a header of
/// big-endian fields (creation time, string-pool offsets of vendor, description and licence, and
/// offset/length pairs of five sections), then the sections:
///
/// - AS: 8-byte records (number, pool offset of the name);
/// - network tree: 12-byte nodes (child for bit 0, child for bit 1, network index or 0xffffffff).
///   Node 0 is the root; a child index of 0 means no child. A node at depth d is the /d prefix
///   spelled by the bits along its path over the 128-bit address space, IPv4 as `::ffff:0:0/96`;
/// - network data: 12-byte records (2-byte country code, 2 padding, ASN, flags, 2 reserved);
/// - countries: 8-byte records (code, continent, pool offset of the name);
/// - string pool: NUL-terminated strings.
///
/// Every offset, length, index and string is checked against the file before use, and the tree
/// must be a tree (no node reached twice), so a hostile file costs at most one pass over its nodes
/// and fails with a ``ImportError`` naming the file and the fault. The two signatures in the header
/// are not verified: the file's integrity is the package manager's or the operator's job.
struct LocationDatabase {
    /// One network's data.
    struct Network: Sendable {
        /// ISO 3166 code (or a special code such as `A1`); empty when the network has none.
        var country: String
        /// Origin AS; 0 when the database has none.
        var asn: UInt32
        /// Flags: 1 anonymous proxy, 2 satellite provider, 4 anycast, 8 drop.
        var flags: UInt16
    }

    /// One row of the countries section.
    struct Country: Sendable {
        /// Two-letter code.
        var code: String
        /// Two-letter continent code.
        var continent: String
        /// Name, from the string pool.
        var name: String
    }

    /// A section: where it starts and how many records of its size it holds.
    private struct Section {
        var offset: Int
        var count: Int
    }

    static let magic = Array("LOCDBXX".utf8)
    /// Magic and version (8), created_at (8), 13 32-bit fields, two 16-bit signature lengths, two
    /// 2048-byte signatures and 32 bytes of padding.
    static let headerSize = 8 + 8 + 13 * 4 + 2 * 2 + 2 * 2048 + 32
    static let nodeSize = 12
    static let networkSize = 12
    static let asSize = 8
    static let countrySize = 8
    /// Network index meaning "this node holds no network".
    static let noNetwork: UInt32 = 0xffff_ffff

    /// The file name, for messages.
    let name: String
    /// The whole file.
    private let bytes: [UInt8]
    /// When the database was made, Unix seconds.
    let createdAt: UInt64
    /// Vendor, description and licence from the string pool.
    let vendor: String
    let description: String
    let license: String
    /// The countries section.
    let countries: [Country]
    /// How many AS records the file holds.
    let asCount: Int
    private let tree: Section
    private let networks: Section

    /// Parses the header and the small sections and checks every section's bounds; the tree is
    /// checked when it is walked (``forEachNetwork(selected:_:)``).
    init(bytes: [UInt8], name: String) throws {
        self.name = name
        self.bytes = bytes
        func fail(_ message: String) -> ImportError { ImportError(origin: name, message: message) }
        guard bytes.count >= 8, Array(bytes[0..<7]) == Self.magic else {
            throw fail("not an IPFire location database (no LOCDBXX magic)")
        }
        guard bytes[7] == 1 else { throw fail("unsupported location database version \(bytes[7]) (this build reads 1)") }
        guard bytes.count >= Self.headerSize else {
            throw fail("truncated: \(bytes.count) bytes, the version 1 header alone needs \(Self.headerSize)")
        }
        createdAt = Self.u64(bytes, 8)
        let field = { (index: Int) in Int(Self.u32(bytes, 16 + 4 * index)) }
        // Each length and offset is at most 2^32 - 1, so their sum cannot overflow Int.
        func section(_ what: String, offsetField: Int, size: Int) throws -> Section {
            let offset = field(offsetField), length = field(offsetField + 1)
            guard offset + length <= bytes.count else {
                throw fail("\(what) section at offset \(offset), \(length) bytes, ends past the end of the file (\(bytes.count) bytes)")
            }
            guard length % size == 0 else {
                throw fail("\(what) section length \(length) is not a multiple of its \(size)-byte records")
            }
            return Section(offset: offset, count: length / size)
        }
        let asSection = try section("AS", offsetField: 3, size: Self.asSize)
        networks = try section("network data", offsetField: 5, size: Self.networkSize)
        tree = try section("network tree", offsetField: 7, size: Self.nodeSize)
        let countrySection = try section("countries", offsetField: 9, size: Self.countrySize)
        let pool = try section("string pool", offsetField: 11, size: 1)
        for (index, offset) in [16 + 13 * 4, 16 + 13 * 4 + 2].enumerated() where Self.u16(bytes, offset) > 2048 {
            throw fail("signature \(index + 1) length \(Self.u16(bytes, offset)) exceeds 2048 bytes")
        }
        func string(_ poolOffset: UInt32, _ what: @autoclosure () -> String) throws -> String {
            let start = Int(poolOffset)
            guard start < pool.count else {
                throw fail("\(what()): string pool offset \(start) is outside the pool (\(pool.count) bytes)")
            }
            let end = pool.offset + pool.count
            guard let nul = bytes[(pool.offset + start)..<end].firstIndex(of: 0) else {
                throw fail("\(what()): string at pool offset \(start) has no terminating NUL")
            }
            return String(decoding: bytes[(pool.offset + start)..<nul], as: UTF8.self)
        }
        vendor = try string(Self.u32(bytes, 16), "vendor")
        description = try string(Self.u32(bytes, 20), "description")
        license = try string(Self.u32(bytes, 24), "license")
        asCount = asSection.count
        var countries: [Country] = []
        countries.reserveCapacity(countrySection.count)
        for index in 0..<countrySection.count {
            let at = countrySection.offset + index * Self.countrySize
            guard let code = Self.code(bytes[at], bytes[at + 1]), !code.isEmpty else {
                throw fail("country \(index): code bytes 0x\(String(bytes[at], radix: 16)) 0x\(String(bytes[at + 1], radix: 16)) are not two letters or digits")
            }
            let continent = Self.code(bytes[at + 2], bytes[at + 3]) ?? ""
            countries.append(Country(code: code, continent: continent,
                                     name: try string(Self.u32(bytes, at + 4), "country \(code)")))
        }
        self.countries = countries
    }

    /// How many networks the network data section holds.
    var networkCount: Int { networks.count }

    /// The network of record `index` (checked by the caller against ``networkCount``).
    private func network(_ index: Int) throws -> Network {
        let at = networks.offset + index * Self.networkSize
        guard let country = Self.code(bytes[at], bytes[at + 1]) else {
            throw ImportError(origin: name, message: "network \(index): country code bytes 0x\(String(bytes[at], radix: 16)) 0x\(String(bytes[at + 1], radix: 16)) are not two letters or digits")
        }
        return Network(country: country, asn: Self.u32(bytes, at + 4), flags: Self.u16(bytes, at + 8))
    }

    /// One node of the tree.
    private struct Node {
        var zero: Int
        var one: Int
        /// Network index, nil when the node holds none.
        var network: Int?
    }

    private func node(_ index: Int, depth: Int) throws -> Node {
        let at = tree.offset + index * Self.nodeSize
        let zero = Int(Self.u32(bytes, at)), one = Int(Self.u32(bytes, at + 4)), network = Self.u32(bytes, at + 8)
        if zero != 0 || one != 0 {
            guard zero < tree.count, one < tree.count else {
                throw ImportError(origin: name, message: "network tree node \(index): child \(max(zero, one)) is out of range (\(tree.count) nodes)")
            }
            guard depth < 128 else {
                throw ImportError(origin: name, message: "network tree node \(index) is at depth 128 and still has children")
            }
        }
        guard network == Self.noNetwork || Int(network) < networks.count else {
            throw ImportError(origin: name, message: "network tree node \(index): network \(network) is out of range (\(networks.count) networks)")
        }
        return Node(zero: zero, one: one, network: network == Self.noNetwork ? nil : Int(network))
    }

    /// Calls `body` with prefixes whose longest match gives exactly the addresses whose most
    /// specific database network is `selected` (nil: every network), each with that network, in
    /// address order.
    ///
    /// When every network is selected, every network is one prefix (a nested network is a longer
    /// prefix, so a longest-prefix match answers as `location lookup` does). Otherwise a selected
    /// network that contains unselected ones is split around them: its prefix would otherwise
    /// also match the unselected networks' addresses.
    ///
    /// A network covering all of `::ffff:0:0/96` is also yielded as `0.0.0.0/0`, since libloc
    /// looks IPv4 addresses up as mapped IPv6 ones.
    func forEachNetwork(selected: ((Network) -> Bool)?, _ body: (IPPrefix, Network) throws -> Void) throws {
        guard tree.count > 0 else { return }
        // Pass 1: check the tree (bounds, depth, no node reached twice) and mark every node below
        // which (itself included) some network is not selected.
        var hasUnselected = [Bool](repeating: false, count: tree.count)
        var reached = [Bool](repeating: false, count: tree.count)
        var stack: [(node: Int, depth: Int, expanded: Bool)] = [(0, 0, false)]
        reached[0] = true
        while let top = stack.popLast() {
            let node = try node(top.node, depth: top.depth)
            if top.expanded {
                var below = false
                if let selected, let index = node.network { below = try !selected(network(index)) }
                below = below || (node.zero != 0 && hasUnselected[node.zero]) || (node.one != 0 && hasUnselected[node.one])
                hasUnselected[top.node] = below
                continue
            }
            stack.append((top.node, top.depth, true))
            func push(_ child: Int) throws {
                guard child != 0 else { return }
                guard !reached[child] else {
                    throw ImportError(origin: name, message: "network tree node \(child) is reached twice (the tree has a loop or a shared node)")
                }
                reached[child] = true
                stack.append((child, top.depth + 1, false))
            }
            try push(node.one)
            try push(node.zero)
        }
        // Pass 2: yield prefixes in address order. `effective` is the network that decides the
        // node's addresses (the nearest one above or at it) when selected; `covered` tells that a
        // prefix yielded above already spells it.
        var walk: [(node: Int, depth: Int, bits: UInt128, effective: Network?, covered: Bool)] = [(0, 0, 0, nil, false)]
        while let top = walk.popLast() {
            let node = try node(top.node, depth: top.depth)
            var effective = top.effective, covered = top.covered
            if let index = node.network {
                let network = try network(index)
                effective = (selected?(network) ?? true) ? network : nil
                covered = false
            }
            if let network = effective, !covered {
                if !hasUnselected[top.node] {
                    try emit(top.bits, top.depth, network, body)
                    covered = true
                } else {
                    // Split: a missing child's half has no other network, so it is this one's.
                    if node.zero == 0 { try emit(top.bits, top.depth + 1, network, body) }
                    if node.one == 0 { try emit(top.bits | Self.bit(top.depth), top.depth + 1, network, body) }
                }
            }
            if node.one != 0 { walk.append((node.one, top.depth + 1, top.bits | Self.bit(top.depth), effective, covered)) }
            if node.zero != 0 { walk.append((node.zero, top.depth + 1, top.bits, effective, covered)) }
        }
    }

    /// The bit of the 128-bit address at `depth` (0 is the most significant); depth < 128.
    private static func bit(_ depth: Int) -> UInt128 { UInt128(1) << (127 - depth) }

    private static let mappedPrefix = UInt128(0xffff) << 32

    /// Yields the tree prefix `bits/length` as an IPv4 prefix when it lies in `::ffff:0:0/96`, and
    /// also as `0.0.0.0/0` when it contains that whole range.
    private func emit(_ bits: UInt128, _ length: Int, _ network: Network, _ body: (IPPrefix, Network) throws -> Void) throws {
        if length >= 96 && bits >> 32 == 0xffff {
            try body(IPPrefix(network: .v4(UInt32(truncatingIfNeeded: bits)), length: length - 96), network)
            return
        }
        try body(IPPrefix(network: .v6(bits), length: length), network)
        if Self.mappedPrefix & IPPrefix.mask128(length) == bits {
            try body(IPPrefix(network: .v4(0), length: 0), network)
        }
    }

    /// A two-byte code: "" for two NULs, the text for two upper-case letters or digits, else nil.
    private static func code(_ first: UInt8, _ second: UInt8) -> String? {
        if first == 0 && second == 0 { return "" }
        func valid(_ byte: UInt8) -> Bool { (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39) }
        guard valid(first), valid(second) else { return nil }
        return String(decoding: [first, second], as: UTF8.self)
    }

    // Big-endian reads at offsets the callers checked against the file's size.
    private static func u16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
    private static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
    private static func u64(_ bytes: [UInt8], _ at: Int) -> UInt64 { UInt64(u32(bytes, at)) << 32 | UInt64(u32(bytes, at + 4)) }
}
