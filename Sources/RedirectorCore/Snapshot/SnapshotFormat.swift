/// The `.rdb` snapshot file format, version 4. All integers are little-endian.
///
/// ```
/// offset  size  field
///      0     8  magic "RDRSNAP\0"
///      8     4  format version (2)
///     12     4  section count
///     16     8  file size in bytes
///     24     8  checksum: ``SnapshotFormat/checksum(_:)``, covering every byte but itself
///     32     8  creation time, Unix seconds
///     40    24  reserved, zero
///     64  16×n  section directory: tag (4 ASCII bytes), reserved (4), offset (4), length (4)
/// ```
/// Sections start on 8-byte boundaries. Tags: `STRS` string table, `REGN` regions (string offset
/// u32, length u32; entry 0 is the empty string), `ATTR` match attributes (8 bytes each: provider
/// i16 or -1, region index u16, ASN u32; sorted by provider), `P4DR`/`P4ND`/`P4LF` and
/// `P6DR`/`P6ND`/`P6LF` the IPv4/IPv6 answer tries (direct array, nodes, leaves = attribute
/// index + 1; see ``PoptrieImage``), `L4DR`/`L4ND`/`L4LF` and `L6DR`/`L6ND`/`L6LF` the length
/// tries beside them (leaves = prefix length + 1; see ``PoptrieMatcher``), `POLI` the policy (see
/// ``Policy``), `INFO` prefix counts (two u32) and the compile report (UTF-8), and the optional
/// `SRCS` provenance (where each source file came from) and `ASRC` (the source of each
/// attribute; see ``ProvenanceSection``).
///
/// `SRCS` and `ASRC` were added without a version change: loaders skip tags they do not know,
/// so older builds read such snapshots (without provenance), and this build reads snapshots
/// without them (no provenance, no source names). Their contents are validated like every
/// other section's.
///
/// Version 1 had one trie per family with the length packed into every leaf; version 3 had no
/// presence checks (a build that ignored them would redirect unverified). Older files are
/// refused with a message to recompile.
public enum SnapshotFormat {
    /// The file's first eight bytes.
    public static let magic: [UInt8] = Array("RDRSNAP\0".utf8)
    /// The version this library reads and writes.
    public static let version: UInt32 = 4
    /// Header size.
    public static let headerSize = 64

    /// The checksum of a whole snapshot (at least ``headerSize`` bytes): XXH64 of bytes 32..<size
    /// (creation time, reserved bytes, directory, sections), seeded with XXH64 (seed 0) of bytes
    /// 0..<24 (magic, version, section count, file size). Every byte except the checksum field
    /// itself is covered, so no flipped bit anywhere goes unnoticed.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let head = XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<24]))
        return XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[32...]), seed: head)
    }
    /// The largest snapshot `Snapshot.open` reads (real ones have a few MiB; section offsets are
    /// 32-bit anyway), so a wrong path cannot make a process allocate without bound.
    public static let maximumSize = 1 << 30
    /// Size of one section directory entry.
    public static let directoryEntrySize = 16

    /// Section tags.
    public enum Tag: String, CaseIterable, Sendable {
        case strings = "STRS"
        case regions = "REGN"
        case attributes = "ATTR"
        case direct4 = "P4DR"
        case nodes4 = "P4ND"
        case leaves4 = "P4LF"
        case direct6 = "P6DR"
        case nodes6 = "P6ND"
        case leaves6 = "P6LF"
        case lengthDirect4 = "L4DR"
        case lengthNodes4 = "L4ND"
        case lengthLeaves4 = "L4LF"
        case lengthDirect6 = "L6DR"
        case lengthNodes6 = "L6ND"
        case lengthLeaves6 = "L6LF"
        case policy = "POLI"
        case info = "INFO"
        case sources = "SRCS"
        case attributeSources = "ASRC"

        /// The tag as stored: four ASCII bytes read as a little-endian integer.
        var code: UInt32 {
            rawValue.utf8.reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
    }
}

/// Everything a snapshot holds, in memory, before it is written.
public struct SnapshotContents: Sendable {
    /// Interned strings referenced by attributes and policy.
    public var strings: StringTableBuilder
    /// Match attributes, indexed by matcher values, sorted by provider; at most 32,767 providers
    /// and 65,535 distinct regions (the compiler checks).
    public var attributes: [MatchAttributes]
    /// The IPv4 matcher.
    public var ipv4: PoptrieMatcherImage
    /// The IPv6 matcher.
    public var ipv6: PoptrieMatcherImage
    /// Number of distinct IPv4 and IPv6 prefixes in the matchers.
    public var prefixCounts: (v4: Int, v6: Int)
    /// Providers and routes.
    public var policy: Policy
    /// The compiler's report: sources, conflicts, masked prefixes.
    public var report: String
    /// Creation time, Unix seconds.
    public var createdAt: UInt64
    /// Where each source file came from (written as `SRCS` when not empty).
    public var sources: [SourceProvenance]
    /// For each attribute, the index in ``sources`` of the source that produced it, or
    /// ``ProvenanceSection/noSource`` (written as `ASRC` when it has one entry per attribute).
    public var attributeSources: [UInt16]

    /// Creates contents.
    public init(strings: StringTableBuilder, attributes: [MatchAttributes], ipv4: PoptrieMatcherImage, ipv6: PoptrieMatcherImage,
                prefixCounts: (v4: Int, v6: Int), policy: Policy, report: String, createdAt: UInt64,
                sources: [SourceProvenance] = [], attributeSources: [UInt16] = []) {
        self.sources = sources
        self.attributeSources = attributeSources
        self.strings = strings
        self.attributes = attributes
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.prefixCounts = prefixCounts
        self.policy = policy
        self.report = report
        self.createdAt = createdAt
    }

    /// The snapshot file's bytes.
    public func encoded() -> [UInt8] {
        var sections: [(SnapshotFormat.Tag, [UInt8])] = []
        // Provenance strings join the table before it is written.
        var strings = self.strings
        let sourceBytes = ProvenanceSection.encode(sources, strings: &strings)
        sections.append((.strings, strings.bytes))
        var regions: [StringRef] = [.empty]
        var regionIndex: [StringRef: Int] = [.empty: 0]
        var writer = ByteWriter()
        for attribute in attributes {
            let region = regionIndex[attribute.region] ?? regions.count
            if region == regions.count {
                regionIndex[attribute.region] = region
                regions.append(attribute.region)
            }
            writer.write(Int16(truncatingIfNeeded: attribute.provider))
            writer.write(UInt16(truncatingIfNeeded: region))
            writer.write(attribute.asn)
        }
        let attributeBytes = writer.bytes
        writer = ByteWriter()
        for region in regions { writer.write(region) }
        sections.append((.regions, writer.bytes))
        sections.append((.attributes, attributeBytes))
        for (image, tags) in [(ipv4.answers, (SnapshotFormat.Tag.direct4, SnapshotFormat.Tag.nodes4, SnapshotFormat.Tag.leaves4)),
                              (ipv4.lengths, (.lengthDirect4, .lengthNodes4, .lengthLeaves4)),
                              (ipv6.answers, (.direct6, .nodes6, .leaves6)),
                              (ipv6.lengths, (.lengthDirect6, .lengthNodes6, .lengthLeaves6))] {
            let (direct, nodes, leaves) = image.serialized()
            sections.append((tags.0, direct))
            sections.append((tags.1, nodes))
            sections.append((tags.2, leaves))
        }
        writer = ByteWriter()
        policy.encode(into: &writer)
        sections.append((.policy, writer.bytes))
        writer = ByteWriter()
        writer.write(UInt32(prefixCounts.v4))
        writer.write(UInt32(prefixCounts.v6))
        writer.write(bytes: report.utf8)
        sections.append((.info, writer.bytes))
        if !sources.isEmpty {
            sections.append((.sources, sourceBytes))
            if attributeSources.count == attributes.count {
                sections.append((.attributeSources, ProvenanceSection.encode(attributeSources: attributeSources)))
            }
        }

        var file = ByteWriter()
        file.write(bytes: SnapshotFormat.magic)
        file.write(SnapshotFormat.version)
        file.write(UInt32(sections.count))
        file.write(UInt64(0))  // file size, patched below
        file.write(UInt64(0))  // checksum, patched below
        file.write(createdAt)
        file.write(bytes: repeatElement(0, count: 24))
        let directory = file.bytes.count
        file.write(bytes: repeatElement(0, count: sections.count * SnapshotFormat.directoryEntrySize))
        for (index, (tag, bytes)) in sections.enumerated() {
            file.align(to: 8)
            let entry = directory + index * SnapshotFormat.directoryEntrySize
            file.patch(tag.code, at: entry)
            file.patch(UInt32(file.bytes.count), at: entry + 8)
            file.patch(UInt32(bytes.count), at: entry + 12)
            file.write(bytes: bytes)
        }
        file.align(to: 8)
        file.patch(UInt64(file.bytes.count), at: 16)
        let checksum = file.bytes.withUnsafeBytes { SnapshotFormat.checksum($0) }
        file.patch(checksum, at: 24)
        return file.bytes
    }
}
