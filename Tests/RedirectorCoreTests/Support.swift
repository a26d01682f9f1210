import Foundation
import RedirectorCore

/// SplitMix64: a tiny deterministic generator, so every random test is reproducible from its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next128() -> UInt128 { UInt128(next()) << 64 | UInt128(next()) }
}

/// The repository root, found from this file's path (Tests/RedirectorCoreTests/Support.swift).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A file under `examples/data`.
func exampleData(_ name: String) -> URL {
    repositoryRoot.appendingPathComponent("examples/data").appendingPathComponent(name)
}

/// A prefix from text the test knows to be valid.
func prefix(_ text: String) -> IPPrefix {
    guard let prefix = IPPrefix(text) else { fatalError("test prefix '\(text)' does not parse") }
    return prefix
}

/// An address from text the test knows to be valid.
func address(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("test address '\(text)' does not parse") }
    return address
}

/// Little-endian bytes of a poptrie image's three arrays, as a snapshot stores them.
func serialize(_ image: PoptrieImage) -> (direct: [UInt8], nodes: [UInt8], leaves: [UInt8]) {
    var direct = ByteWriter()
    for entry in image.direct { direct.write(entry) }
    var nodes = ByteWriter()
    for node in image.nodes {
        nodes.write(node.vector)
        nodes.write(node.leafVector)
        nodes.write(node.leafBase)
        nodes.write(node.nodeBase)
    }
    var leaves = ByteWriter()
    for leaf in image.leaves { leaves.write(leaf) }
    return (direct.bytes, nodes.bytes, leaves.bytes)
}

/// A ``Poptrie`` over memory this object owns (a poptrie only borrows its memory).
final class OwnedPoptrie: PrefixMatcher {
    let poptrie: Poptrie
    private let buffers: [UnsafeMutableRawBufferPointer]

    /// Validates and wraps `image`; leaves may carry values `0..<valueCount`.
    init(_ image: PoptrieImage, valueCount: Int) throws {
        let (direct, nodes, leaves) = serialize(image)
        func copy(_ bytes: [UInt8]) -> UnsafeMutableRawBufferPointer {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
            buffer.copyBytes(from: bytes)
            return buffer
        }
        let buffers = [copy(direct), copy(nodes), copy(leaves)]
        self.buffers = buffers
        do {
            poptrie = try Poptrie(
                family: image.family,
                direct: UnsafeRawBufferPointer(rebasing: buffers[0][..<direct.count]),
                nodes: UnsafeRawBufferPointer(rebasing: buffers[1][..<nodes.count]),
                leaves: UnsafeRawBufferPointer(rebasing: buffers[2][..<leaves.count]),
                valueCount: valueCount)
        } catch {
            for buffer in buffers { buffer.deallocate() }
            throw error
        }
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }

    func longestMatch(_ address: IPAddress) -> PrefixMatch? { poptrie.longestMatch(address) }
}

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
        ipv4: PoptrieBuilder.build(family: .v4, entries: v4),
        ipv6: PoptrieBuilder.build(family: .v6, entries: v6),
        prefixCounts: (Set(v4.map(\.prefix)).count, Set(v6.map(\.prefix)).count),
        policy: policy, report: report, createdAt: createdAt)
}

/// Every address worth probing around a prefix: its first and last address and their outside neighbours.
func boundaryProbes(_ prefix: IPPrefix) -> [IPAddress] {
    var probes: [IPAddress] = [prefix.network, prefix.lastAddress]
    switch (prefix.network, prefix.lastAddress) {
    case (.v4(let first), .v4(let last)):
        if first > 0 { probes.append(.v4(first - 1)) }
        if last < UInt32.max { probes.append(.v4(last + 1)) }
        if last > first { probes.append(.v4(first + 1)); probes.append(.v4(last - 1)) }
    case (.v6(let first), .v6(let last)):
        if first > 0 { probes.append(.v6(first - 1)) }
        if last < UInt128.max { probes.append(.v6(last + 1)) }
        if last > first { probes.append(.v6(first + 1)); probes.append(.v6(last - 1)) }
    default:
        break
    }
    return probes
}

/// A random address inside `prefix`.
func randomAddress(in prefix: IPPrefix, using generator: inout SeededGenerator) -> IPAddress {
    switch prefix.network {
    case .v4(let network):
        let host = prefix.length == 32 ? 0 : UInt32(truncatingIfNeeded: generator.next()) & ~IPPrefix.mask32(prefix.length)
        return .v4(network | host)
    case .v6(let network):
        let host = prefix.length == 128 ? 0 : generator.next128() & ~IPPrefix.mask128(prefix.length)
        return .v6(network | host)
    }
}

/// Text of an error, for message assertions.
func message(of error: any Error) -> String { "\(error)" }
