// matcher-bench: the IPv4/IPv6 matchers side by side in one run, on one table and one seeded set
// of random addresses: the 1-bit radix tree (NGINX geo's structure), snapshot format 1's poptrie
// (leaves pack value and prefix length), and format 2's answer trie (leaves hold only the answer)
// with the length trie that explanations use. For IPv6 the answer trie is also built with a 20-bit
// direct array (4 MiB), the width the issue suggested. Timings on a shared machine are noisy: read the ratios to the radix tree.
//
//   RedirectorMatcherBenchmark <pyasn dump (plain)> <4|6> [addresses]
import Glibc
import RedirectorCore
import RedirectorTestSupport

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Best of three rounds of `body` over every probe, in lookups per second.
func rate(_ count: Int, _ body: () -> UInt64) -> (perSecond: Double, sink: UInt64) {
    var best = Double.infinity
    var sink: UInt64 = 0
    for _ in 0..<3 {
        let start = now()
        sink &+= body()
        best = min(best, now() - start)
    }
    return (Double(count) / best, sink)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let family = AddressFamily(rawValue: Int(arguments[2]) ?? 0),
      let file = fopen(arguments[1], "r") else {
    print("usage: RedirectorMatcherBenchmark <pyasn dump> <4|6> [addresses]")
    exit(2)
}
let count = arguments.count > 3 ? Int(arguments[3]) ?? 4_194_304 : 4_194_304

// The table: every prefix of the family, valued by its ASN's index.
var entries: [(prefix: IPPrefix, value: UInt32)] = []
var asnIndex: [Substring: UInt32] = [:]
var line: UnsafeMutablePointer<CChar>?
var capacity = 0
while getline(&line, &capacity, file) > 0, let line {
    let text = String(cString: line)
    guard !text.hasPrefix(";") else { continue }
    let fields = text.split(whereSeparator: { $0 == "\t" || $0 == "\n" })
    guard fields.count == 2, let prefix = IPPrefix(fields[0]), prefix.network.family == family else { continue }
    let value = asnIndex[fields[1]] ?? UInt32(asnIndex.count)
    asnIndex[fields[1]] = value
    entries.append((prefix, value))
}
fclose(file)
let valueCount = asnIndex.count
let tree = BinaryRadixTree(family: family, entries: entries)

// Probes: uniformly random for IPv4; for IPv6 inside the table's prefixes (a uniformly random IPv6
// address almost never matches), as Benchmarks/abi/abi_bench.c draws them.
var generator = SeededGenerator(seed: 42)
let probes4: [UInt32] = family == .v4 ? (0..<count).map { _ in UInt32(truncatingIfNeeded: generator.next()) } : []
let probes6: [UInt128] = family == .v4 ? [] : (0..<count).map { _ in
        let prefix = entries[Int(generator.next() % UInt64(entries.count))].prefix
        guard case .v6(let network) = prefix.network else { return 0 }
        let random = UInt128(generator.next()) << 64 | UInt128(generator.next())
        return network | (prefix.length == 128 ? 0 : random & ~IPPrefix.mask128(prefix.length))
    }

@MainActor
func lookups(_ trie: Poptrie) -> (perSecond: Double, sink: UInt64) {
    rate(count) {
        var sink: UInt64 = 0
        if family == .v4 {
            for address in probes4 { sink &+= UInt64(trie.lookup(v4: address)) }
        } else {
            for address in probes6 { sink &+= UInt64(trie.lookup(v6: address)) }
        }
        return sink
    }
}

let radix = rate(count) {
    var sink: UInt64 = 0
    if family == .v4 {
        for address in probes4 { sink &+= UInt64(tree.longestMatch(.v4(address))?.value ?? 0) }
    } else {
        for address in probes6 { sink &+= UInt64(tree.longestMatch(.v6(address))?.value ?? 0) }
    }
    return sink
}
print("\(family.name): \(entries.count) prefixes, \(count) addresses (best of 3 rounds)")
print("  \("1-bit radix tree (Swift)".padding(46))\(format(radix.perSecond / 1e6)) M lookups/s  1.00x")

var variants: [(String, PoptrieLeaf, Int)] = [
    ("format 1 poptrie (value+length leaves)", .packed(valueCount: valueCount), Poptrie.directBits(family: family)),
    ("format 2 answer trie", .answer(valueCount: valueCount), Poptrie.directBits(family: family)),
    ("format 2 length trie (explanations)", .length, PoptrieBuilder.lengthDirectBits),
]
if family == .v6 { variants.insert(("format 2 answer trie, 20-bit direct", .answer(valueCount: valueCount), 20), at: 2) }
for (name, leaves, directBits) in variants {
    let storage = try PoptrieStorage(PoptrieBuilder.build(from: tree, leaves: leaves, directBits: directBits))
    let result = lookups(storage.poptrie)
    let bytes = Double(storage.poptrie.byteCount) / Double(entries.count)
    print("  \(name.padding(46))\(format(result.perSecond / 1e6)) M lookups/s  \(format(result.perSecond / radix.perSecond))x"
        + "  \(format(bytes)) B/prefix  (direct \(directBits) bits, \(storage.poptrie.nodeCount) nodes, \(storage.poptrie.leafCount) leaves)")
}

func format(_ value: Double) -> String {
    let scaled = (value * 100).rounded() / 100
    return String(scaled)
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
