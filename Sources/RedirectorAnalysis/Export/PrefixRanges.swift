import RedirectorCore

/// One address range of the flattened prefix table: every address in `start...end` has the same
/// longest match, `prefix`, whose attributes are at `value`.
public struct PrefixRange: Hashable, Sendable {
    /// First address, left-aligned for IPv4 as a plain integer (IPv4 ranges hold 32-bit values).
    public var start: UInt128
    /// Last address (inclusive).
    public var end: UInt128
    /// The longest prefix covering the range.
    public var prefix: IPPrefix
    /// The attribute index of that prefix.
    public var value: UInt32

    /// The range's family.
    public var family: AddressFamily { prefix.network.family }
}

/// Flattens a longest-prefix-match table into disjoint ranges, so that other engines (DuckDB,
/// BigQuery) can apply the same match with one range join and no "longest first" window:
/// each address lies in at most one range, and that range names the prefix LPM would choose.
public enum PrefixRanges {
    /// Disjoint ranges of one family, in address order. `prefixes` may be nested and in any order.
    public static func flatten(_ prefixes: [PrefixMatch]) -> [PrefixRange] {
        struct Open {
            var start: UInt128
            var end: UInt128
            var match: PrefixMatch
        }
        func bounds(_ prefix: IPPrefix) -> (UInt128, UInt128) {
            switch (prefix.network, prefix.lastAddress) {
            case (.v4(let a), .v4(let b)): return (UInt128(a), UInt128(b))
            case (.v6(let a), .v6(let b)): return (a, b)
            default: return (0, 0)
            }
        }
        let sorted = prefixes.sorted { lhs, rhs in
            let a = bounds(lhs.prefix).0
            let b = bounds(rhs.prefix).0
            return a != b ? a < b : lhs.prefix.length < rhs.prefix.length
        }
        var ranges: [PrefixRange] = []
        var stack: [Open] = []
        // `cursor` is the first address not yet emitted; nil once the top of the space is passed.
        var cursor: UInt128? = 0
        func emit(_ open: Open, upTo end: UInt128) {
            guard let from = cursor, from <= end else { return }
            ranges.append(PrefixRange(start: max(from, open.start), end: end, prefix: open.match.prefix, value: open.match.value))
            cursor = end == UInt128.max || (open.match.prefix.network.family == .v4 && end == UInt128(UInt32.max)) ? nil : end + 1
        }
        func close(_ open: Open) {
            emit(open, upTo: open.end)
        }
        for match in sorted {
            let (start, end) = bounds(match.prefix)
            while let top = stack.last, top.end < start {
                close(top)
                stack.removeLast()
            }
            if let top = stack.last, start > 0 {
                emit(top, upTo: start - 1)
            }
            if let top = stack.last, top.start == start && top.end == end { continue }  // duplicate prefix: first wins
            stack.append(Open(start: start, end: end, match: match))
            cursor = start
        }
        while let top = stack.popLast() { close(top) }
        return ranges
    }

    /// Fixed-width lower-case hex of a range bound: 8 digits for IPv4, 32 for IPv6 (so that text or
    /// byte comparison orders them numerically).
    public static func hex(_ value: UInt128, family: AddressFamily) -> String {
        let digits = family == .v4 ? 8 : 32
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(digits - text.count, 0)) + text
    }
}

extension PrefixRanges {
    /// The CSV header of ``csv(_:)``.
    public static let csvHeader = "family,start,end,start_hex,end_hex,prefix,provider,region,asn"

    /// A snapshot's match table as disjoint ranges, IPv4 then IPv6: `family` (4 or 6), `start` and `end`
    /// (inclusive, decimal integers: 32-bit for IPv4, 128-bit for IPv6), the same bounds as fixed-width
    /// hex, the longest-match `prefix`, and its `provider`, `region` and `asn` (empty when none).
    public static func csv(_ snapshot: Snapshot) -> String {
        var out = csvHeader + "\n"
        for ranges in [flatten(snapshot.ipv4.visiblePrefixes()), flatten(snapshot.ipv6.visiblePrefixes())] {
            for range in ranges {
                let attributes = snapshot.attributes(at: range.value)
                let family = range.family
                out += "\(family.rawValue),\(range.start),\(range.end),\(hex(range.start, family: family)),\(hex(range.end, family: family)),"
                out += "\(range.prefix),\(CSVReport.escape(snapshot.providerName(attributes.provider))),"
                out += "\(CSVReport.escape(snapshot.strings.string(attributes.region))),\(attributes.asn == 0 ? "" : String(attributes.asn))\n"
            }
        }
        return out
    }
}
