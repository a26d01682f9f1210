import Foundation
import RedirectorCore
import Testing

/// The matchers on the real AWS and Google Cloud ranges from `examples/data` (≈ 17k prefixes,
/// duplicates included): poptrie, snapshot, radix tree and linear scan agree everywhere.
///
/// The JSON is read here with Foundation, independently of the compiler's importers.
@Suite struct RealDataMatcherTests {
    struct Table {
        var v4: [(prefix: IPPrefix, value: UInt32)] = []
        var v6: [(prefix: IPPrefix, value: UInt32)] = []
        var regions: [String] = []
    }

    /// AWS then GCP entries in file order; the value is the index of `provider/region`.
    static let table: Table = {
        var table = Table()
        var regionIndex: [String: UInt32] = [:]
        func add(_ text: String, _ region: String) {
            guard let parsed = IPPrefix.parse(text) else { fatalError("real data prefix '\(text)' does not parse") }
            let value = regionIndex[region] ?? UInt32(table.regions.count)
            if value == UInt32(table.regions.count) {
                regionIndex[region] = value
                table.regions.append(region)
            }
            if parsed.prefix.network.family == .v4 { table.v4.append((parsed.prefix, value)) } else { table.v6.append((parsed.prefix, value)) }
        }
        func load(_ name: String) -> [String: Any] {
            guard let data = try? Data(contentsOf: exampleData(name)),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                fatalError("cannot read examples/data/\(name)")
            }
            return object
        }
        let aws = load("aws-ip-ranges.json")
        for entry in aws["prefixes"] as? [[String: Any]] ?? [] {
            add(entry["ip_prefix"] as? String ?? "", "aws/\(entry["region"] as? String ?? "")")
        }
        for entry in aws["ipv6_prefixes"] as? [[String: Any]] ?? [] {
            add(entry["ipv6_prefix"] as? String ?? "", "aws/\(entry["region"] as? String ?? "")")
        }
        let gcp = load("gcp-cloud.json")
        for entry in gcp["prefixes"] as? [[String: Any]] ?? [] {
            add(entry["ipv4Prefix"] as? String ?? entry["ipv6Prefix"] as? String ?? "", "gcp/\(entry["scope"] as? String ?? "")")
        }
        return table
    }()

    @Test func dataIsTheExpectedSize() {
        let table = RealDataMatcherTests.table
        // aws-ip-ranges.json: 10,544 v4 + 5,880 v6 entries; gcp-cloud.json: 999 v4 + 48 v6.
        #expect(table.v4.count == 10_544 + 999)
        #expect(table.v6.count == 5_880 + 48)
        #expect(Set(table.v4.map(\.prefix)).count < table.v4.count)  // duplicates are part of the test
    }

    @Test(arguments: AddressFamily.allCases)
    func poptrieRadixAndLinearScanAgree(family: AddressFamily) throws {
        let table = RealDataMatcherTests.table
        let entries = family == .v4 ? table.v4 : table.v6
        let valueCount = table.regions.count
        var g = SeededGenerator(seed: UInt64(family.rawValue) * 1000)
        var probes = Set<IPAddress>()
        for entry in entries {
            probes.formUnion(boundaryProbes(entry.prefix))
            probes.insert(randomAddress(in: entry.prefix, using: &g))
        }
        for _ in 0..<10_000 {
            probes.insert(family == .v4 ? .v4(UInt32(truncatingIfNeeded: g.next())) : .v6(g.next128()))
        }
        let (mismatches, matched) = try compareMatchers(entries: entries, family: family, valueCount: valueCount, probes: Array(probes))
        #expect(mismatches == 0)
        #expect(matched > probes.count / 2)
        // Known answer: LPM (not archeio's shortest match) for 15.193.0.5.
        if family == .v4 {
            let poptrie = try PoptrieMatcherStorage(PoptrieBuilder.build(family: family, entries: entries, valueCount: valueCount))
            let oracle = LinearScanMatcher(entries: entries)
            let answer = try #require(poptrie.longestMatch(address("15.193.0.5")))
            #expect(answer.prefix == prefix("15.193.0.0/24"))
            #expect(table.regions[Int(answer.value)] == "aws/ap-south-1")
            #expect(oracle.longestMatch(address("15.193.20.5")).map { table.regions[Int($0.value)] } == "aws/GLOBAL")
        }
    }

    @Test func snapshotAnswersLikeTheOracle() throws {
        let table = RealDataMatcherTests.table
        let contents = snapshotContents(entries: table.v4 + table.v6, valueCount: table.regions.count)
        let snapshot = try Snapshot(bytes: contents.encoded())
        #expect(snapshot.prefixCounts.v4 == Set(table.v4.map(\.prefix)).count)
        #expect(snapshot.prefixCounts.v6 == Set(table.v6.map(\.prefix)).count)
        var g = SeededGenerator(seed: 99)
        var mismatches = 0
        for (entries, family) in [(table.v4, AddressFamily.v4), (table.v6, .v6)] {
            let oracle = BinaryRadixTree(family: family, entries: entries)  // equal to the linear scan (test above)
            for entry in entries {
                for probe in boundaryProbes(entry.prefix) + [randomAddress(in: entry.prefix, using: &g)] {
                    let expected = oracle.longestMatch(probe)
                    let actual = snapshot.lookup(probe)
                    if actual != expected {
                        mismatches += 1
                        if mismatches <= 10 { Issue.record("\(probe): expected \(String(describing: expected)), snapshot \(String(describing: actual))") }
                    }
                    if let actual {
                        #expect(snapshot.attributes(at: actual.value).asn == 64_500 + actual.value)
                    }
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: AddressFamily.allCases)
    func visiblePrefixesRoundTripOnRealData(family: AddressFamily) throws {
        let table = RealDataMatcherTests.table
        let entries = family == .v4 ? table.v4 : table.v6
        let original = try PoptrieMatcherStorage(PoptrieBuilder.build(family: family, entries: entries, valueCount: table.regions.count))
        let visible = original.matcher.visiblePrefixes()
        #expect(visible.count > 1000)
        #expect(visible.count <= Set(entries.map(\.prefix)).count)
        let rebuilt = try PoptrieMatcherStorage(PoptrieBuilder.build(family: family, entries: visible.map { ($0.prefix, $0.value) },
                                                                     valueCount: table.regions.count))
        var mismatches = 0
        for entry in entries {
            for probe in boundaryProbes(entry.prefix) where rebuilt.longestMatch(probe) != original.longestMatch(probe) {
                mismatches += 1
            }
        }
        #expect(mismatches == 0)
        #expect(rebuilt.matcher.visiblePrefixes() == visible)
    }
}
