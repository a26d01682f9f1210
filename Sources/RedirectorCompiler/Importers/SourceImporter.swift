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
    public var origin: SourceOrigin
}

/// Where a record came from, formatted only when a message needs it (a dump has a record a line).
public enum SourceOrigin: Sendable, CustomStringConvertible {
    /// Line `number` (1-based) of `file`.
    case line(file: String, number: Int)
    /// Any other place, e.g. `file: prefixes[12]`.
    case text(String)
    /// Record `index` (0-based) of a binary file, e.g. `location.db: prefix 12`; no string is made
    /// per record of a database with a million of them.
    case record(file: String, kind: String, index: Int)

    /// `file:line`, or the text.
    public var description: String {
        switch self {
        case .line(let file, let number): return "\(file):\(number)"
        case .text(let text): return text
        case .record(let file, let kind, let index): return "\(file): \(kind) \(index)"
        }
    }
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
    /// The publisher's own version of the data, where the format has one (AWS and Google Cloud
    /// `syncToken`, Azure `changeNumber`, a pyasn dump's date).
    public var publisherVersion: String?
    /// When the publisher made the data, Unix seconds, where the format says (AWS `createDate`,
    /// Google Cloud `creationTime`, the location database's creation time).
    public var publishedAt: UInt64?
    /// Where the data came from: set by the compiler after parsing (file digest, config place,
    /// fetch), nil from an importer.
    public var provenance: SourceProvenance?

    /// Empty data.
    public init() {}

    /// Adds a prefix parsed from `text`, noting host bits; throws a clear error for malformed text.
    mutating func addPrefix(_ text: String, provider: String? = nil, region: String? = nil, asn: UInt32? = nil,
                            origin: String) throws {
        guard let parsed = IPPrefix.parse(text) else {
            throw ImportError(origin: origin, message: "invalid prefix '\(text)'")
        }
        try add(parsed, text: text, provider: provider, region: region, asn: asn, origin: .text(origin))
    }

    /// Adds a parsed prefix (`text` as the source wrote it, for the host-bits note).
    mutating func add(_ parsed: (prefix: IPPrefix, hadHostBits: Bool), text: @autoclosure () -> String,
                      provider: String? = nil, region: String? = nil, asn: UInt32? = nil, origin: SourceOrigin) throws {
        // Names and regions reach NGINX variables, debug headers and metrics labels.
        for (field, value) in [("provider", provider), ("region", region)] {
            if let value, let byte = SnapshotText.controlByte(in: value) {
                throw ImportError(origin: "\(origin)", message: "\(field) '\(SnapshotText.escaped(value))' contains control byte 0x\(String(byte, radix: 16))")
            }
        }
        if parsed.hadHostBits {
            notes.append("\(origin): prefix \(text()) has host bits set; using \(parsed.prefix)")
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
    /// Only networks of these AS numbers (location database); nil means no ASN filter.
    public var asns: Set<UInt32>?
    /// Only networks in these country codes (location database, upper case); nil means no country filter.
    public var countries: Set<String>?

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
    /// Whether the format reads the `asns`/`countries` options (the location database); for the
    /// others the compiler rejects them rather than silently ignoring them.
    var selectsNetworks: Bool { get }
}

extension SourceImporter {
    /// Most formats read one file.
    public var readsDirectories: Bool { false }
    /// Most formats have no networks to select.
    public var selectsNetworks: Bool { false }
}

/// The registry of importers.
public enum SourceImporters {
    /// Every supported format.
    public static let all: [any SourceImporter] = [
        K8sASNImporter(), PyASNImporter(), AWSRangesImporter(), GCPRangesImporter(), AzureServiceTagsImporter(),
        CIDRListImporter(), LocationDatabaseImporter(),
    ]

    /// The importer for `format`.
    public static func importer(for format: String) -> (any SourceImporter)? {
        all.first { $0.format == format }
    }
}
