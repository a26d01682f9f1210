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
    /// The IPv4 and IPv6 matchers; values index ``asns``.
    private let ipv4: Poptrie
    private let ipv6: Poptrie
    private let asnValues: UnsafeMutableBufferPointer<UInt32>
    private let storage: [UnsafeMutableRawBufferPointer]
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
        try self.init(ipv4: PoptrieBuilder.build(family: .v4, entries: entries4), ipv6: PoptrieBuilder.build(family: .v6, entries: entries6),
                      asns: asns, prefixCounts: (entries4.count, entries6.count), sources: paths)
    }

    /// Wraps built poptrie images whose values index `asns`.
    init(ipv4 image4: PoptrieImage, ipv6 image6: PoptrieImage, asns: [UInt32], prefixCounts: (v4: Int, v6: Int),
         sources: [String]) throws {
        var storage: [UnsafeMutableRawBufferPointer] = []
        func poptrie(_ image: PoptrieImage) throws -> Poptrie {
            let direct = ASNTable.bytes(of: image.direct, &storage)
            let leaves = ASNTable.bytes(of: image.leaves, &storage)
            let nodes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(image.nodes.count * PoptrieNode.byteSize, 8), alignment: 8)
            storage.append(nodes)
            for (index, node) in image.nodes.enumerated() {
                let offset = index * PoptrieNode.byteSize
                nodes.storeBytes(of: node.vector.littleEndian, toByteOffset: offset, as: UInt64.self)
                nodes.storeBytes(of: node.leafVector.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
                nodes.storeBytes(of: node.leafBase.littleEndian, toByteOffset: offset + 16, as: UInt32.self)
                nodes.storeBytes(of: node.nodeBase.littleEndian, toByteOffset: offset + 20, as: UInt32.self)
            }
            return try Poptrie(family: image.family, direct: UnsafeRawBufferPointer(direct),
                               nodes: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(nodes)[..<(image.nodes.count * PoptrieNode.byteSize)]),
                               leaves: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(leaves)[..<(image.leaves.count * 4)]),
                               valueCount: asns.count)
        }
        do {
            ipv4 = try poptrie(image4)
            ipv6 = try poptrie(image6)
        } catch {
            for buffer in storage { buffer.deallocate() }
            throw ASNTableError(description: "\(sources.joined(separator: ", ")): \(error)")
        }
        asnValues = .allocate(capacity: max(asns.count, 1))
        _ = asnValues.initialize(from: asns)
        self.storage = storage
        self.prefixCounts = prefixCounts
        self.asnCount = asns.count
        self.sources = sources
    }

    deinit {
        for buffer in storage { buffer.deallocate() }
        asnValues.deallocate()
    }

    /// Little-endian bytes of `values` in new memory recorded in `storage`.
    private static func bytes(of values: [UInt32], _ storage: inout [UnsafeMutableRawBufferPointer]) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(values.count * 4, 8), alignment: 8)
        storage.append(buffer)
        for (index, value) in values.enumerated() { buffer.storeBytes(of: value.littleEndian, toByteOffset: index * 4, as: UInt32.self) }
        return UnsafeMutableRawBufferPointer(rebasing: buffer[..<(values.count * 4)])
    }

    /// The origin AS of `address`, 0 when no prefix covers it.
    @inline(__always)
    public func asn(of address: IPAddress) -> UInt32 {
        let packed: UInt32
        switch address {
        case .v4(let value): packed = ipv4.lookup(v4: value)
        case .v6(let value): packed = ipv6.lookup(v6: value)
        }
        guard packed != 0 else { return 0 }
        let index = Int(PackedMatch.value(packed))
        return index < asnCount ? asnValues[index] : 0
    }
}
