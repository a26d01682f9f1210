import RedirectorCore

/// Why an ASN table was rejected.
public struct ASNTableError: Error, CustomStringConvertible, Sendable {
    /// "`<file>:<line>`: `<reason>`".
    public let description: String
}

/// Prefix → origin AS lookups from pyasn `ipasn` dumps (`prefix<TAB>asn`, `;` comments, plain or
/// gzip), for clients the snapshot has no ASN for. Held in two poptries like the snapshot's own
/// matchers, so a lookup costs about as much as a decision's.
public final class ASNTable: @unchecked Sendable {
    /// The IPv4 and IPv6 answer tries; values index `asnValues`.
    private let ipv4: PoptrieStorage
    private let ipv6: PoptrieStorage
    private let asnValues: UnsafeMutableBufferPointer<UInt32>
    /// Number of IPv4 and IPv6 prefixes loaded.
    public let prefixCounts: (v4: Int, v6: Int)
    /// Number of distinct ASNs.
    public let asnCount: Int
    /// The files loaded.
    public let sources: [String]

    /// Loads one or more dumps; for a prefix listed twice the first file (and line) wins.
    public convenience init(paths: [String]) throws {
        var entries4: [(prefix: IPPrefix, value: UInt32)] = []
        var entries6: [(prefix: IPPrefix, value: UInt32)] = []
        var asnIndex: [UInt32: UInt32] = [:]
        var asns: [UInt32] = []
        for path in paths {
            let input: LogInput
            do { input = try LogInput(path: path, bufferSize: 1 << 20) } catch { throw ASNTableError(description: "\(error)") }
            while let line = try input.nextLine() {
                guard line.count > 0, line[0] != UInt8(ascii: ";"), line[0] != UInt8(ascii: "#") else { continue }
                guard let tab = ByteScanning.find(UInt8(ascii: "\t"), in: line, from: 0) ?? ByteScanning.find(UInt8(ascii: " "), in: line, from: 0),
                      let parsed = AddressParser.parsePrefix(UnsafeRawBufferPointer(rebasing: line[..<tab])),
                      let asn64 = ByteScanning.parseUnsigned(ByteScanning.trimmed(UnsafeRawBufferPointer(rebasing: line[(tab + 1)...]))),
                      asn64 <= UInt64(UInt32.max)
                else {
                    throw ASNTableError(description: "\(path):\(input.lineNumber): expected 'prefix<TAB>asn', got '\(String(decoding: line.prefix(80), as: UTF8.self))'")
                }
                let asn = UInt32(asn64)
                let value: UInt32
                if let existing = asnIndex[asn] {
                    value = existing
                } else {
                    value = UInt32(asns.count)
                    asnIndex[asn] = value
                    asns.append(asn)
                }
                let prefix = IPPrefix(network: parsed.address, length: parsed.length)
                if parsed.address.family == .v4 { entries4.append((prefix, value)) } else { entries6.append((prefix, value)) }
            }
            if let warning = input.warning { throw ASNTableError(description: warning) }
        }
        func trie(_ family: AddressFamily, _ entries: [(prefix: IPPrefix, value: UInt32)]) -> PoptrieImage {
            PoptrieBuilder.build(from: BinaryRadixTree(family: family, entries: entries), leaves: .answer(valueCount: asns.count),
                                 directBits: Poptrie.directBits(family: family))
        }
        try self.init(ipv4: trie(.v4, entries4), ipv6: trie(.v6, entries6), asns: asns,
                      prefixCounts: (entries4.count, entries6.count), sources: paths)
    }

    /// Wraps built answer tries whose values index `asns`.
    init(ipv4 image4: PoptrieImage, ipv6 image6: PoptrieImage, asns: [UInt32], prefixCounts: (v4: Int, v6: Int),
         sources: [String]) throws {
        do {
            ipv4 = try PoptrieStorage(image4)
            ipv6 = try PoptrieStorage(image6)
        } catch {
            throw ASNTableError(description: "\(sources.joined(separator: ", ")): \(error)")
        }
        asnValues = .allocate(capacity: max(asns.count, 1))
        _ = asnValues.initialize(from: asns)
        self.prefixCounts = prefixCounts
        self.asnCount = asns.count
        self.sources = sources
    }

    deinit {
        asnValues.deallocate()
    }

    /// The origin AS of `address`, 0 when no prefix covers it.
    @inline(__always)
    public func asn(of address: IPAddress) -> UInt32 {
        let leaf: UInt32
        switch address {
        case .v4(let value): leaf = ipv4.poptrie.lookup(v4: value)
        case .v6(let value): leaf = ipv6.poptrie.lookup(v6: value)
        }
        let index = Int(leaf) &- 1  // answer leaves: index + 1, 0 for none
        return index >= 0 && index < asnCount ? asnValues[index] : 0
    }
}
