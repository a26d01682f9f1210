/// Where one source file of a snapshot came from: the `SRCS` section holds one per file the
/// compiler read (each file of a `k8s-asns` directory on its own), in reading order; the `ASRC`
/// section names, for every match attribute, the source whose prefix produced it.
public struct SourceProvenance: Sendable, Equatable {
    /// How decisions, NGINX variables and metrics name the source: its URL when it was fetched,
    /// else its path relative to the config's directory when inside it (a directory's file as
    /// `dir/file.yaml`), else its absolute path.
    public var name: String
    /// The config entry that named it, e.g. `config.yaml: providers[0].sources[1]`.
    public var place: String
    /// The absolute path of the file read.
    public var path: String
    /// The config's `format:`.
    public var format: String
    /// The URL it was fetched from (`redirector update`), nil for a local file.
    public var url: String?
    /// The server's `ETag` when fetched, if it sent one.
    public var etag: String?
    /// The server's `Last-Modified` when fetched, if it sent one.
    public var lastModified: String?
    /// When it was last fetched or revalidated, Unix seconds; nil for a local file.
    public var fetchedAt: UInt64?
    /// SHA-256 of the file's bytes on disk (32 bytes; what `sha256sum` prints, so a compressed
    /// dump's digest is that of the `.gz`).
    public var sha256: [UInt8]
    /// The file's size on disk in bytes.
    public var size: UInt64
    /// The publisher's own version (AWS/GCP `syncToken`, Azure `changeNumber`, a pyasn dump's date).
    public var publisherVersion: String?
    /// When the publisher made the data, Unix seconds, where the format says.
    public var publishedAt: UInt64?
    /// Prefixes the file yielded as read (before conflicts between sources were resolved).
    public var prefixCount: Int

    /// Creates a record.
    public init(name: String, place: String, path: String, format: String, url: String? = nil, etag: String? = nil,
                lastModified: String? = nil, fetchedAt: UInt64? = nil, sha256: [UInt8], size: UInt64,
                publisherVersion: String? = nil, publishedAt: UInt64? = nil, prefixCount: Int) {
        self.name = name
        self.place = place
        self.path = path
        self.format = format
        self.url = url
        self.etag = etag
        self.lastModified = lastModified
        self.fetchedAt = fetchedAt
        self.sha256 = sha256
        self.size = size
        self.publisherVersion = publisherVersion
        self.publishedAt = publishedAt
        self.prefixCount = prefixCount
    }

    /// The time the source's age is measured from: the publisher's date when the format has
    /// one, else when it was fetched, else the snapshot's compile time (`compiledAt`) — the
    /// newest the data can be known to be.
    public func dataTime(compiledAt: UInt64) -> UInt64 {
        publishedAt ?? fetchedAt ?? compiledAt
    }

    /// Which of ``dataTime(compiledAt:)``'s clocks applies: `published`, `fetched` or `compiled`.
    public var dataTimeBasis: String {
        publishedAt != nil ? "published" : fetchedAt != nil ? "fetched" : "compiled"
    }

    /// The digest as 64 lower-case hex digits.
    public var sha256Hex: String { HexDigits.encode(sha256) }
}

/// Lower-case hexadecimal text of bytes (digests in provenance, logs and cache records).
public enum HexDigits {
    /// Two lower-case hex digits per byte.
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xf)]] }, as: UTF8.self)
    }
}

/// The `SRCS` and `ASRC` sections (format version 3, both optional: a snapshot without them
/// has no provenance, and loaders that predate them skip them, as they skip every unknown tag).
///
/// `SRCS`: count u32, reserved u32, then ``entrySize``-byte entries: eight string references
/// (offset u32, length u32 into `STRS`; empty = none) for name, place, path, format, url, etag,
/// last-modified and publisher version; SHA-256 (32 bytes); size u64; published-at u64;
/// fetched-at u64; prefix count u32; flags u32 (bit 0: published-at is set, bit 1: fetched-at
/// is set; other bits zero). `ASRC`: one u16 per match attribute, the index of its source, or
/// ``noSource``.
public enum ProvenanceSection {
    /// Bytes per `SRCS` entry.
    public static let entrySize = 8 * 8 + 32 + 8 * 3 + 4 + 4
    /// The `ASRC` value of an attribute with no recorded source.
    public static let noSource: UInt16 = 0xFFFF
    /// Most sources a snapshot can name (`ASRC` values are u16, one value reserved).
    public static let maximumSources = Int(noSource)
    private static let publishedFlag: UInt32 = 1
    private static let fetchedFlag: UInt32 = 2

    /// The `SRCS` bytes, interning the records' strings into `strings`.
    static func encode(_ sources: [SourceProvenance], strings: inout StringTableBuilder) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(UInt32(truncatingIfNeeded: sources.count))
        writer.write(UInt32(0))
        for source in sources {
            for text in [source.name, source.place, source.path, source.format, source.url ?? "", source.etag ?? "",
                         source.lastModified ?? "", source.publisherVersion ?? ""] {
                writer.write(strings.intern(text))
            }
            writer.write(bytes: source.sha256.prefix(32))
            writer.write(bytes: repeatElement(0, count: max(0, 32 - source.sha256.count)))
            writer.write(source.size)
            writer.write(source.publishedAt ?? 0)
            writer.write(source.fetchedAt ?? 0)
            writer.write(UInt32(truncatingIfNeeded: source.prefixCount))
            writer.write((source.publishedAt != nil ? publishedFlag : 0) | (source.fetchedAt != nil ? fetchedFlag : 0))
        }
        return writer.bytes
    }

    /// Validates and reads `SRCS`: every reference must name a string of the table (which holds
    /// no control byte), the length must match the count, and no unknown flag may be set.
    /// Returns the records and each one's name reference (for C callers).
    static func decode(_ bytes: UnsafeRawBufferPointer, strings: StringTable) throws -> (sources: [SourceProvenance], names: [StringRef]) {
        var reader = ByteReader(bytes, context: "provenance section (SRCS)")
        let count = Int(try reader.read(UInt32.self))
        guard try reader.read(UInt32.self) == 0 else { throw ByteReader.OutOfBounds(description: "provenance section (SRCS): reserved field is not zero") }
        guard count <= maximumSources, bytes.count == 8 + count * entrySize else {
            throw ByteReader.OutOfBounds(description: "provenance section (SRCS) claims \(count) sources in \(bytes.count) bytes (\(entrySize) bytes each after an 8-byte head)")
        }
        var sources: [SourceProvenance] = []
        var names: [StringRef] = []
        for index in 0..<count {
            var texts: [String] = []
            for field in ["name", "place", "path", "format", "url", "etag", "last-modified", "publisher version"] {
                let reference = try strings.validate(StringRef(offset: try reader.read(), length: try reader.read()),
                                                     "provenance source \(index) \(field)")
                if field == "name" { names.append(reference) }
                texts.append(strings.string(reference))
            }
            let digest = Array(try reader.read(bytes: 32))
            let size: UInt64 = try reader.read()
            let publishedAt: UInt64 = try reader.read()
            let fetchedAt: UInt64 = try reader.read()
            let prefixCount: UInt32 = try reader.read()
            let flags: UInt32 = try reader.read()
            guard flags & ~(publishedFlag | fetchedFlag) == 0 else {
                throw ByteReader.OutOfBounds(description: "provenance source \(index) has unknown flags 0x\(String(flags, radix: 16))")
            }
            guard !texts[0].isEmpty else { throw ByteReader.OutOfBounds(description: "provenance source \(index) has no name") }
            func optional(_ text: String) -> String? { text.isEmpty ? nil : text }
            sources.append(SourceProvenance(
                name: texts[0], place: texts[1], path: texts[2], format: texts[3], url: optional(texts[4]), etag: optional(texts[5]),
                lastModified: optional(texts[6]), fetchedAt: flags & fetchedFlag != 0 ? fetchedAt : nil, sha256: digest, size: size,
                publisherVersion: optional(texts[7]), publishedAt: flags & publishedFlag != 0 ? publishedAt : nil,
                prefixCount: Int(prefixCount)))
        }
        return (sources, names)
    }

    /// The `ASRC` bytes.
    static func encode(attributeSources: [UInt16]) -> [UInt8] {
        var writer = ByteWriter()
        for source in attributeSources { writer.write(source) }
        return writer.bytes
    }

    /// Validates and reads `ASRC`: one entry per attribute, each a source index or ``noSource``.
    static func decode(attributeSources bytes: UnsafeRawBufferPointer, attributeCount: Int, sourceCount: Int) throws -> [UInt16] {
        guard bytes.count == attributeCount * 2 else {
            throw ByteReader.OutOfBounds(description: "attribute source section (ASRC) has \(bytes.count) bytes for \(attributeCount) attributes (2 each)")
        }
        var reader = ByteReader(bytes, context: "attribute source section (ASRC)")
        var values: [UInt16] = []
        values.reserveCapacity(attributeCount)
        for index in 0..<attributeCount {
            let value: UInt16 = try reader.read()
            guard value == noSource || Int(value) < sourceCount else {
                throw ByteReader.OutOfBounds(description: "attribute \(index) names source \(value) (of \(sourceCount))")
            }
            values.append(value)
        }
        return values
    }
}
