import RedirectorAnalysis
import RedirectorCore
import Testing

@Suite struct PrefixRangesTests {
    @Test func nestedPrefixesBecomeDisjointRanges() throws {
        let prefixes = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.0/24", "10.3.0.0/16", "0.0.0.0/0", "255.255.255.255/32"]
        let matches = try prefixes.enumerated().map { PrefixMatch(prefix: try #require(IPPrefix($0.element)), value: UInt32($0.offset)) }
        let ranges = PrefixRanges.flatten(matches)
        let text = ranges.map { "\(IPAddress.v4(UInt32($0.start)))-\(IPAddress.v4(UInt32($0.end))) \($0.prefix)" }
        #expect(text == [
            "0.0.0.0-9.255.255.255 0.0.0.0/0",
            "10.0.0.0-10.0.255.255 10.0.0.0/8",
            "10.1.0.0-10.1.1.255 10.1.0.0/16",
            "10.1.2.0-10.1.2.255 10.1.2.0/24",
            "10.1.3.0-10.1.255.255 10.1.0.0/16",
            "10.2.0.0-10.2.255.255 10.0.0.0/8",
            "10.3.0.0-10.3.255.255 10.3.0.0/16",
            "10.4.0.0-10.255.255.255 10.0.0.0/8",
            "11.0.0.0-255.255.255.254 0.0.0.0/0",
            "255.255.255.255-255.255.255.255 255.255.255.255/32",
        ])
        #expect(ranges.first { $0.prefix.description == "10.1.2.0/24" }?.value == 2)  // the first duplicate wins
    }

    @Test func rangesAgreeWithTheSnapshotsLookups() throws {
        let snapshot = simpleSnapshot
        var generator = SeededGenerator(seed: 4_242)
        for (family, ranges) in [(AddressFamily.v4, PrefixRanges.flatten(snapshot.ipv4.visiblePrefixes())), (.v6, PrefixRanges.flatten(snapshot.ipv6.visiblePrefixes()))] {
            #expect(!ranges.isEmpty)
            for (previous, next) in zip(ranges, ranges.dropFirst()) { #expect(previous.end < next.start) }
            func expectMatch(_ value: UInt128) {
                let address: IPAddress = family == .v4 ? .v4(UInt32(truncatingIfNeeded: value)) : .v6(value)
                let index = ranges.partitionPoint { $0.end < value }
                let range = index < ranges.count && ranges[index].start <= value ? ranges[index] : nil
                let match = snapshot.lookup(address)
                #expect(range?.prefix == match?.prefix && range?.value == match?.value, "\(address)")
            }
            for range in ranges {
                expectMatch(range.start)
                expectMatch(range.end)
                if range.start > 0 { expectMatch(range.start - 1) }
                expectMatch(range.end &+ 1)
            }
            for _ in 0..<20_000 {
                let value: UInt128 = family == .v4 ? UInt128(UInt32.random(in: 0...UInt32.max, using: &generator))
                    : UInt128(UInt64.random(in: 0...UInt64.max, using: &generator)) << 64 | UInt128(UInt64.random(in: 0...UInt64.max, using: &generator))
                expectMatch(value)
            }
        }
        let csv = PrefixRanges.csv(snapshot)
        #expect(csv.hasPrefix(PrefixRanges.csvHeader + "\n"))
        #expect(csv.contains(",3.5.140.0/22,amazon,ap-northeast-2,"))
    }
}

extension Array {
    /// The first index whose element fails `belongsBefore` (the array is partitioned by it).
    func partitionPoint(_ belongsBefore: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if belongsBefore(self[middle]) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
