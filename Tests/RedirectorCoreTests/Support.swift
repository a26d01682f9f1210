import Foundation
import RedirectorCore
import Testing
@_exported import RedirectorTestSupport

/// Snapshot contents holding `entries` (values `0..<valueCount`, each with an attribute of no
/// provider whose ASN is the value plus 64,500, so tests can tell values apart) and `policy`.
func snapshotContents(
    entries: [(prefix: IPPrefix, value: UInt32)], valueCount: Int,
    strings: StringTableBuilder = StringTableBuilder(),
    policy: Policy = Policy(providers: [], routes: []),
    attributes: [MatchAttributes]? = nil,
    report: String = "test report", createdAt: UInt64 = 1_700_000_000
) -> SnapshotContents {
    let v4 = entries.filter { $0.prefix.network.family == .v4 }
    let v6 = entries.filter { $0.prefix.network.family == .v6 }
    return SnapshotContents(
        strings: strings,
        attributes: attributes ?? (0..<valueCount).map { MatchAttributes(provider: -1, asn: 64_500 + UInt32($0)) },
        ipv4: PoptrieBuilder.build(family: .v4, entries: v4, valueCount: attributes?.count ?? valueCount),
        ipv6: PoptrieBuilder.build(family: .v6, entries: v6, valueCount: attributes?.count ?? valueCount),
        prefixCounts: (Set(v4.map(\.prefix)).count, Set(v6.map(\.prefix)).count),
        policy: policy, report: report, createdAt: createdAt)
}

/// Text of an error, for message assertions.
func message(of error: any Error) -> String { "\(error)" }

/// Looks every probe up in the linear-scan oracle, the radix tree and the poptrie built from
/// `entries`; records the first ten disagreements as issues.
/// - Returns: how many probes disagreed, and how many the oracle matched.
func compareMatchers(entries: [(prefix: IPPrefix, value: UInt32)], family: AddressFamily, valueCount: Int,
                     probes: [IPAddress]) throws -> (mismatches: Int, matched: Int) {
    let oracle = LinearScanMatcher(entries: entries)
    let tree = BinaryRadixTree(family: family, entries: entries)
    let poptrie = try PoptrieMatcherStorage(PoptrieBuilder.build(family: family, entries: entries, valueCount: valueCount))
    var mismatches = 0, matched = 0
    for probe in probes {
        let expected = oracle.longestMatch(probe)
        if expected != nil { matched += 1 }
        let fromTree = tree.longestMatch(probe)
        let fromPoptrie = poptrie.longestMatch(probe)
        if fromTree != expected || fromPoptrie != expected {
            mismatches += 1
            if mismatches <= 10 {
                Issue.record("\(probe): oracle \(String(describing: expected)), radix \(String(describing: fromTree)), poptrie \(String(describing: fromPoptrie))")
            }
        }
    }
    return (mismatches, matched)
}
