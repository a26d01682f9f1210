import RedirectorCore

/// The ASN table's prefixes, for giving candidates without an ASN the ASN of their longest
/// covering table prefix. The trees are built only when some candidate needs them (an ASN table
/// alone gives every prefix its ASN).
struct ASNPrefixTable {
    private var entries: [(prefix: IPPrefix, value: UInt32)] = []

    /// Adds a table prefix (the first of duplicates wins).
    mutating func insert(_ prefix: IPPrefix, asn: UInt32) {
        entries.append((prefix, asn))
    }

    /// The longest-match trees of both families.
    func matcher() -> (ipv4: BinaryRadixTree, ipv6: BinaryRadixTree) {
        (BinaryRadixTree(family: .v4, entries: entries.lazy.filter { $0.prefix.network.family == .v4 }),
         BinaryRadixTree(family: .v6, entries: entries.lazy.filter { $0.prefix.network.family == .v6 }))
    }
}

/// Stage 5: the match attributes (provider, region, ASN) the matchers' values index, sorted by
/// provider as the format requires, each one's source, and each family's (prefix, attribute
/// index) entries. Attributes are distinct per source too, so an explanation can name the
/// file a prefix came from.
struct MatchTable {
    var attributes: [MatchAttributes]
    /// The source of each attribute (index into the provenance), parallel to ``attributes``.
    var attributeSources: [UInt16]
    var entries4: [(prefix: IPPrefix, value: UInt32)] = []
    var entries6: [(prefix: IPPrefix, value: UInt32)] = []

    /// Builds the table from owned candidates (sorted by prefix).
    init(owned: [Candidate], asnTable: ASNPrefixTable, providerCount: Int, strings: inout StringTableBuilder,
         configName: String) throws {
        // Attribute of each owned prefix, numbered in first-seen order, then renumbered in the
        // format's order through one array (no second hashing pass).
        struct Key: Hashable {
            var attribute: MatchAttributes
            var source: UInt16
        }
        var firstSeen: [Key: Int] = [:]
        var distinct: [Key] = []
        var provisional: [Int] = []
        provisional.reserveCapacity(owned.count)
        var lastRegion: (text: String, reference: StringRef)?
        let asnMatcher = owned.contains { $0.asn == 0 } ? asnTable.matcher() : nil
        for candidate in owned {
            let region: StringRef
            if let lastRegion, lastRegion.text == candidate.region {
                region = lastRegion.reference
            } else {
                region = strings.intern(candidate.region)
                lastRegion = (candidate.region, region)
            }
            var asn = candidate.asn
            if asn == 0, let asnMatcher {
                let tree = candidate.prefix.network.family == .v4 ? asnMatcher.ipv4 : asnMatcher.ipv6
                // The longest table prefix covering the whole candidate, not one inside it that
                // merely starts at the same address.
                asn = tree.longestMatch(candidate.prefix.network, maxLength: candidate.prefix.length)?.value ?? 0
            }
            let attribute = Key(attribute: MatchAttributes(provider: candidate.provider, region: region, asn: asn), source: candidate.source)
            if let index = firstSeen[attribute] {
                provisional.append(index)
            } else {
                firstSeen[attribute] = distinct.count
                provisional.append(distinct.count)
                distinct.append(attribute)
            }
        }
        let order = distinct.indices.sorted {
            let (left, right) = (distinct[$0].attribute, distinct[$1].attribute)
            return (left.provider, left.region.offset, left.asn, distinct[$0].source)
                < (right.provider, right.region.offset, right.asn, distinct[$1].source)
        }
        attributes = order.map { distinct[$0].attribute }
        attributeSources = order.map { distinct[$0].source }
        guard attributes.count <= Int(PackedMatch.maximumValue) + 1, providerCount <= Int(Int16.max),
              Set(attributes.map(\.region)).count <= Int(UInt16.max) else {
            throw ConfigError(place: configName, message: "too many providers, regions or provider/region/ASN combinations for the snapshot format")
        }
        var finalIndex = [UInt32](repeating: 0, count: distinct.count)
        for (position, index) in order.enumerated() { finalIndex[index] = UInt32(position) }
        for (candidate, index) in zip(owned, provisional) {
            let entry = (prefix: candidate.prefix, value: finalIndex[index])
            if candidate.prefix.network.family == .v4 { entries4.append(entry) } else { entries6.append(entry) }
        }
    }
}
