import RedirectorCore

/// One prefix read from a source.
public struct ImportedPrefix: Sendable {
    /// The prefix (host bits cleared).
    public var prefix: IPPrefix
    /// The provider the source names, nil when the source belongs to the provider that lists it.
    public var provider: String?
    /// Region or scope, if the source has one.
    public var region: String?
    /// Origin AS, if the source has one.
    public var asn: UInt32?
    /// Where it came from: `file:line` or `file: prefixes[12]`.
    public var origin: String
}

/// A provider's claim on an AS number (from a vendor ASN list).
public struct ASNClaim: Sendable {
    /// The claiming provider.
    public var provider: String
    /// The AS number.
    public var asn: UInt32
    /// Where it came from.
    public var origin: String
}

/// Targets a source suggests for a provider (k8s.io `redirectsTo`), used when the config sets none.
public struct ProviderHint: Sendable {
    /// The provider.
    public var provider: String
    /// Suggested registry target.
    public var registry: String?
    /// Suggested artifacts target.
    public var artifacts: String?
}

/// Everything one source contributed.
public struct ImportedData: Sendable {
    /// Prefixes.
    public var prefixes: [ImportedPrefix] = []
    /// ASN claims.
    public var asnClaims: [ASNClaim] = []
    /// Target hints.
    public var hints: [ProviderHint] = []
    /// Notes for the compile report (masked host bits, duplicates inside the source).
    public var notes: [String] = []

    /// Empty data.
    public init() {}

    /// Adds a prefix parsed from `text`, noting host bits; throws a clear error for malformed text.
    mutating func addPrefix(_ text: String, provider: String? = nil, region: String? = nil, asn: UInt32? = nil,
                            origin: String) throws {
        guard let parsed = IPPrefix.parse(text) else {
            throw ImportError(origin: origin, message: "invalid prefix '\(text)'")
        }
        // Names and regions reach NGINX variables, debug headers and metrics labels.
        for (field, value) in [("provider", provider), ("region", region)] {
            if let value, let byte = SnapshotText.controlByte(in: value) {
                throw ImportError(origin: origin, message: "\(field) '\(SnapshotText.escaped(value))' contains control byte 0x\(String(byte, radix: 16))")
            }
        }
        if parsed.hadHostBits {
            notes.append("\(origin): prefix \(text) has host bits set; using \(parsed.prefix)")
        }
        prefixes.append(ImportedPrefix(prefix: parsed.prefix, provider: provider, region: region, asn: asn, origin: origin))
    }
}

/// A source that cannot be read, with the place that is wrong.
public struct ImportError: Error, CustomStringConvertible {
    /// `file:line`, `file: key path`, or the file.
    public var origin: String
    /// What is wrong.
    public var message: String

    /// "origin: message".
    public var description: String { "\(origin): \(message)" }
}

/// Options a source entry of the config may set.
public struct SourceOptions: Sendable {
    /// Only these services (AWS `service`, GCP `service`); empty means all.
    public var services: [String] = []
    /// Only service tags whose name starts with one of these (Azure); empty means all.
    public var tags: [String] = []
    /// Region for every prefix of the source, when it has none.
    public var region: String?

    /// Default options.
    public init() {}
}

/// A data-source format: turns a file's bytes into prefixes, ASN claims and hints.
///
/// Adding a format means one new type conforming to this protocol and one line in ``SourceImporters/all``.
public protocol SourceImporter: Sendable {
    /// The name used in the config's `format:` field.
    var format: String { get }
    /// One line for `redirector formats`.
    var summary: String { get }
    /// Parses `bytes`, read from `name`.
    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData
    /// Whether a directory path stands for every `*.yaml`/`*.yml` file in it, each parsed on its own.
    /// Default false: for other formats a directory is an error, not a list of YAML files.
    var readsDirectories: Bool { get }
}

extension SourceImporter {
    /// Most formats read one file.
    public var readsDirectories: Bool { false }
}

/// The registry of importers.
public enum SourceImporters {
    /// Every supported format.
    public static let all: [any SourceImporter] = [
        K8sASNImporter(), PyASNImporter(), AWSRangesImporter(), GCPRangesImporter(), AzureServiceTagsImporter(),
        CIDRListImporter(),
    ]

    /// The importer for `format`.
    public static func importer(for format: String) -> (any SourceImporter)? {
        all.first { $0.format == format }
    }
}

/// Splits bytes into lines (LF or CRLF), yielding 1-based line numbers.
/// Works on bytes: Swift's `Character` treats CRLF as one grapheme, so splitting text on "\n" would not.
func forEachLine(_ bytes: [UInt8], _ body: (Int, Substring) throws -> Void) rethrows {
    var number = 0
    var start = 0
    while start <= bytes.count {
        var end = start
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        if end == bytes.count && start == end && number > 0 { break }
        number += 1
        var stop = end
        if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
        try body(number, Substring(String(decoding: bytes[start..<stop], as: UTF8.self)))
        start = end + 1
    }
}

/// Text that goes into a snapshot's string table: the loader rejects control bytes (other than
/// the NUL terminators) and DEL, because every string can reach a response header or a log line.
enum SnapshotText {
    /// The first control byte or DEL in `text`, or nil.
    static func controlByte(in text: String) -> UInt8? {
        text.utf8.first { $0 < 0x20 || $0 == 0x7f }
    }

    /// `text` with control bytes shown as `\xNN`.
    static func escaped(_ text: String) -> String {
        text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "\\x" + String($0.value, radix: 16) : String($0) }.joined()
    }
}
