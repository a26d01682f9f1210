import RedirectorCore
import Testing

/// Poptrie vs the linear-scan oracle vs the 1-bit radix tree on random nested prefix sets.
@Suite struct MatcherTests {
    /// A random prefix set of one family with heavy nesting: clusters of prefixes sharing a base
    /// address at many lengths (around the direct-array and stride boundaries especially), random
    /// prefixes, the whole space, host routes and duplicates with different values.
    static func randomEntries(family: AddressFamily, seed: UInt64, count: Int) -> [(prefix: IPPrefix, value: UInt32)] {
        var g = SeededGenerator(seed: seed)
        let width = family.bitWidth
        func randomBase() -> IPAddress {
            family == .v4 ? .v4(UInt32(truncatingIfNeeded: g.next())) : .v6(g.next128() | (UInt128(1) << (127 - g.next() % 3)))
        }
        // Lengths near the direct array (18 / 16 bits) and stride boundaries (18 + 6k / 16 + 6k).
        let interesting = family == .v4
            ? [0, 1, 7, 8, 15, 16, 17, 18, 19, 20, 23, 24, 25, 29, 30, 31, 32]
            : [0, 1, 15, 16, 17, 21, 22, 23, 28, 32, 40, 46, 48, 52, 63, 64, 65, 96, 112, 118, 124, 127, 128]
        var entries: [(prefix: IPPrefix, value: UInt32)] = []
        func add(_ prefix: IPPrefix) { entries.append((prefix, UInt32(g.next() % 200))) }
        add(IPPrefix(network: randomBase(), length: 0))
        while entries.count < count {
            let base = randomBase()
            switch g.next() % 4 {
            case 0:  // a nested cluster
                for length in interesting where g.next() % 2 == 0 { add(IPPrefix(network: base, length: length)) }
            case 1:  // siblings under one parent
                let parent = IPPrefix(network: base, length: Int(g.next() % UInt64(width - 4)))
                add(parent)
                for _ in 0..<8 {
                    add(IPPrefix(network: randomAddress(in: parent, using: &g), length: parent.length + 1 + Int(g.next() % UInt64(width - parent.length))))
                }
            case 2:  // a host route and its neighbours
                add(IPPrefix(network: base, length: width))
                add(IPPrefix(network: base, length: width - 1))
            default:  // any length
                add(IPPrefix(network: base, length: Int(g.next() % UInt64(width + 1))))
            }
            if g.next() % 10 == 0, let existing = entries.randomElement(using: &g) {
                entries.append((existing.prefix, UInt32(g.next() % 200)))  // duplicate prefix, other value
            }
        }
        return entries
    }

    /// Probes: every prefix's boundary addresses, random addresses inside prefixes and anywhere.
    static func probes(for entries: [(prefix: IPPrefix, value: UInt32)], family: AddressFamily, seed: UInt64, random: Int) -> [IPAddress] {
        var g = SeededGenerator(seed: seed)
        var probes = Set<IPAddress>()
        for entry in entries {
            probes.formUnion(boundaryProbes(entry.prefix))
            probes.insert(randomAddress(in: entry.prefix, using: &g))
        }
        for _ in 0..<random {
            probes.insert(family == .v4 ? .v4(UInt32(truncatingIfNeeded: g.next())) : .v6(g.next128()))
        }
        probes.formUnion(family == .v4 ? [.v4(0), .v4(.max)] : [.v6(0), .v6(.max)])
        return Array(probes)
    }

    /// Compares the three matchers on every probe and returns the number of mismatches.
    static func compare(entries: [(prefix: IPPrefix, value: UInt32)], family: AddressFamily, probes: [IPAddress]) throws -> Int {
        try compareMatchers(entries: entries, family: family, valueCount: 200, probes: probes).mismatches
    }

    @Test(arguments: [(AddressFamily.v4, UInt64(11)), (.v4, 12), (.v4, 13), (.v4, 14), (.v6, 21), (.v6, 22), (.v6, 23), (.v6, 24)])
    func randomNestedSetsAgree(family: AddressFamily, seed: UInt64) throws {
        let entries = MatcherTests.randomEntries(family: family, seed: seed, count: 2500)
        let probes = MatcherTests.probes(for: entries, family: family, seed: seed + 1000, random: 20_000)
        #expect(probes.count > 30_000)
        #expect(try MatcherTests.compare(entries: entries, family: family, probes: probes) == 0)
    }

    /// Every address of a /16 (IPv4) or of the last 16 bits of a /112 (IPv6), against 2,000 random
    /// prefixes packed inside and around it: an exhaustive comparison where every stride level is busy.
    @Test(arguments: [(AddressFamily.v4, UInt64(41)), (.v6, 42)])
    func denseBlockExhaustively(family: AddressFamily, seed: UInt64) throws {
        var g = SeededGenerator(seed: seed)
        let block: IPPrefix = family == .v4 ? prefix("10.20.0.0/16") : prefix("2001:db8:1:2:3:4:5:0/112")
        let width = family.bitWidth
        var entries: [(prefix: IPPrefix, value: UInt32)] = [(IPPrefix(network: block.network, length: block.length - 3), 199)]
        for _ in 0..<2000 {
            let length = block.length + Int(g.next() % UInt64(width - block.length + 1))
            entries.append((IPPrefix(network: randomAddress(in: block, using: &g), length: length), UInt32(g.next() % 199)))
        }
        let probes: [IPAddress] = (0..<65_536).map { offset in
            switch block.network {
            case .v4(let base): return .v4(base | UInt32(offset))
            case .v6(let base): return .v6(base | UInt128(offset))
            }
        } + boundaryProbes(IPPrefix(network: block.network, length: block.length - 3))
        #expect(try MatcherTests.compare(entries: entries, family: family, probes: probes) == 0)
    }

    @Test(arguments: AddressFamily.allCases)
    func emptyTableMatchesNothing(family: AddressFamily) throws {
        let poptrie = try PoptrieMatcherStorage(PoptrieBuilder.build(family: family, entries: [], valueCount: 0))
        var g = SeededGenerator(seed: 5)
        for _ in 0..<1000 {
            let probe: IPAddress = family == .v4 ? .v4(UInt32(truncatingIfNeeded: g.next())) : .v6(g.next128())
            #expect(poptrie.longestMatch(probe) == nil)
        }
        #expect(poptrie.matcher.visiblePrefixes().isEmpty)
        #expect(poptrie.matcher.answers.nodeCount == 0 && poptrie.matcher.lengths.nodeCount == 0)
    }

    /// Default routes, host routes and the ends of the address space, per family: table, then
    /// (address, expected prefix, value) cases, then an address of the other family.
    static let hostRouteTables: [(entries: [(String, UInt32)], cases: [(String, String, UInt32)], otherFamily: String)] = [
        ([("0.0.0.0/0", 1), ("10.0.0.0/8", 2), ("10.1.2.3/32", 3), ("10.1.2.2/31", 4), ("255.255.255.255/32", 5), ("0.0.0.0/32", 6)],
         [("1.1.1.1", "0.0.0.0/0", 1), ("10.200.0.0", "10.0.0.0/8", 2), ("10.1.2.3", "10.1.2.3/32", 3),
          ("10.1.2.2", "10.1.2.2/31", 4), ("10.1.2.4", "10.0.0.0/8", 2), ("255.255.255.255", "255.255.255.255/32", 5),
          ("255.255.255.254", "0.0.0.0/0", 1), ("0.0.0.0", "0.0.0.0/32", 6), ("0.0.0.1", "0.0.0.0/0", 1)],
         "::"),
        ([("::/0", 1), ("2001:db8::/32", 2), ("2001:db8::1/128", 3), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 4),
          ("::/128", 5), ("2001:db8:0:0:8000::/65", 6)],
         [("2600::1", "::/0", 1), ("2001:db8::2", "2001:db8::/32", 2), ("2001:db8::1", "2001:db8::1/128", 3),
          ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 4),
          ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "::/0", 1), ("::", "::/128", 5), ("::1", "::/0", 1),
          ("2001:db8::8000:0:0:1", "2001:db8:0:0:8000::/65", 6), ("2001:db8::7fff:0:0:1", "2001:db8::/32", 2)],
         "1.2.3.4"),
    ]

    @Test(arguments: 0..<2)
    func defaultRouteAndHostRoutes(table: Int) throws {
        let (texts, cases, otherFamily) = MatcherTests.hostRouteTables[table]
        let entries = texts.map { (prefix: prefix($0.0), value: $0.1) }
        let poptrie = try PoptrieMatcherStorage(PoptrieBuilder.build(family: entries[0].prefix.network.family, entries: entries, valueCount: 7))
        for (text, expectedPrefix, value) in cases {
            #expect(poptrie.longestMatch(address(text)) == PrefixMatch(prefix: prefix(expectedPrefix), value: value), "\(text)")
        }
        #expect(poptrie.longestMatch(address(otherFamily)) == nil)  // the other family never matches
    }

    @Test func duplicatePrefixFirstEntryWinsEverywhere() throws {
        let entries: [(prefix: IPPrefix, value: UInt32)] = [
            (prefix("192.0.2.0/24"), 7), (prefix("192.0.2.0/24"), 9), (prefix("192.0.2.77/24"), 11),
        ]
        let expected = PrefixMatch(prefix: prefix("192.0.2.0/24"), value: 7)
        let poptrie = try PoptrieMatcherStorage(PoptrieBuilder.build(family: .v4, entries: entries, valueCount: 12))
        let probe = address("192.0.2.1")
        let oracle = LinearScanMatcher(entries: entries)
        let radix = BinaryRadixTree(family: .v4, entries: entries)
        #expect(oracle.longestMatch(probe) == expected)
        #expect(radix.longestMatch(probe) == expected)
        #expect(poptrie.longestMatch(probe) == expected)
        var tree = BinaryRadixTree(family: .v4)
        let added = tree.insert(prefix("192.0.2.0/24"), value: 1)
        let addedAgain = tree.insert(prefix("192.0.2.0/24"), value: 2)
        let addedOtherFamily = tree.insert(prefix("::/0"), value: 3)
        #expect(added)
        #expect(!addedAgain)
        #expect(!addedOtherFamily)  // other family ignored
        #expect(tree.longestMatch(address("192.0.2.9"))?.value == 1)
    }

    @Test(arguments: [(AddressFamily.v4, UInt64(31)), (.v6, 32)])
    func visiblePrefixesRoundTrip(family: AddressFamily, seed: UInt64) throws {
        let entries = MatcherTests.randomEntries(family: family, seed: seed, count: 1500)
        let original = try PoptrieMatcherStorage(PoptrieBuilder.build(family: family, entries: entries, valueCount: 200))
        let visible = original.matcher.visiblePrefixes()
        // Sorted, unique, and each one an input prefix with the value the oracle gives it (first wins).
        let oracle = LinearScanMatcher(entries: entries)
        #expect(visible == visible.sorted { $0.prefix < $1.prefix })
        #expect(Set(visible.map(\.prefix)).count == visible.count)
        let firstValue = Dictionary(entries.map { ($0.prefix, $0.value) }, uniquingKeysWith: { first, _ in first })
        for match in visible {
            #expect(firstValue[match.prefix] == match.value, "\(match.prefix) is not an input prefix with that value")
        }
        // Every prefix a lookup returns at one of its own boundaries is visible.
        let visibleSet = Set(visible)
        for entry in entries {
            for probe in [entry.prefix.network, entry.prefix.lastAddress] {
                if let answer = oracle.longestMatch(probe), answer.prefix == entry.prefix {
                    #expect(visibleSet.contains(answer), "\(answer.prefix) is reachable but not listed")
                }
            }
        }
        // Rebuilding from the visible prefixes gives identical answers.
        let rebuilt = try PoptrieMatcherStorage(
            PoptrieBuilder.build(family: family, entries: visible.map { ($0.prefix, $0.value) }, valueCount: 200))
        let probes = MatcherTests.probes(for: entries, family: family, seed: seed + 7, random: 3000)
        var mismatches = 0
        for probe in probes where rebuilt.longestMatch(probe) != original.longestMatch(probe) { mismatches += 1 }
        #expect(mismatches == 0)
        #expect(rebuilt.matcher.visiblePrefixes() == visible)
    }

    @Test func shadowedPrefixIsNotVisible() throws {
        // 10.0.0.0/24 is covered completely by its two /25 halves: no lookup can return it.
        let entries: [(prefix: IPPrefix, value: UInt32)] = [
            (prefix("10.0.0.0/24"), 1), (prefix("10.0.0.0/25"), 2), (prefix("10.0.0.128/25"), 3), (prefix("10.0.0.0/8"), 4),
        ]
        let poptrie = try PoptrieMatcherStorage(PoptrieBuilder.build(family: .v4, entries: entries, valueCount: 5))
        let visible = poptrie.matcher.visiblePrefixes().map { "\($0.prefix)=\($0.value)" }
        #expect(visible == ["10.0.0.0/8=4", "10.0.0.0/25=2", "10.0.0.128/25=3"])
    }

    @Test func packedMatchRoundTrip() {
        for value in [UInt32(0), 1, 255, 256, 65_535, PackedMatch.maximumValue] {
            for length in [0, 1, 32, 64, 127, 128] {
                let packed = PackedMatch.pack(value: value, length: length)
                #expect(packed != 0)
                #expect(packed & Poptrie.nodeFlag == 0)
                #expect(PackedMatch.value(packed) == value)
                #expect(PackedMatch.length(packed) == length)
            }
        }
        #expect(PackedMatch.unpack(0, for: address("1.2.3.4")) == nil)
        #expect(PackedMatch.unpack(PackedMatch.pack(value: 3, length: 8), for: address("1.2.3.4"))
                == PrefixMatch(prefix: prefix("1.0.0.0/8"), value: 3))
    }
}
