import Foundation
import RedirectorCore

/// `redirector update`'s cache directory: for each URL source a copy of the file, named from
/// its URL, with a metadata record beside it (``CacheMetadata``); and the record of the last
/// snapshot `update` installed (``InstalledState``). Records are JSON, replaced atomically.
public struct SourceCache: Sendable {
    /// The directory.
    public let directory: String

    /// The cache in `directory` (not created until something is written).
    public init(directory: String) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
    }

    /// The cached copy's path: the first 16 hex digits of the URL's SHA-256 (unique and stable)
    /// and the URL's last path component (readable, and a `.gz` stays recognisable).
    public func file(for url: String) -> String {
        var hasher = SHA256Digest()
        hasher.update(Array(url.utf8))
        let key = HexDigits.encode(Array(hasher.finalize().prefix(8)))
        let last = URLComponents(string: url)?.path.split(separator: "/").last.map(String.init) ?? ""
        let readable = String(last.unicodeScalars.filter { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }.prefix(64))
        return "\(directory)/\(key)\(readable.isEmpty ? "" : "-" + readable)"
    }

    /// The metadata record's path, beside the copy.
    public func metadataFile(for url: String) -> String { file(for: url) + ".meta.json" }

    /// The cached copy's record, when the copy and a readable record for this URL both exist.
    public func metadata(for url: String) -> CacheMetadata? {
        guard FileManager.default.fileExists(atPath: file(for: url)),
              let record: CacheMetadata = Self.readJSON(metadataFile(for: url)), record.url == url else { return nil }
        return record
    }

    /// The cached copy as the compiler reads it, when there is one.
    public func fetchedSource(for url: String) -> FetchedSource? {
        metadata(for: url).map { FetchedSource(file: file(for: url), cachePath: file(for: url), fetch: $0.fetch) }
    }

    /// Replaces the URL's metadata record.
    public func write(_ metadata: CacheMetadata) throws {
        try Self.writeJSON(metadata, to: metadataFile(for: metadata.url))
    }

    /// The installed-state record's path.
    public var stateFile: String { "\(directory)/installed.json" }

    /// The record of the last snapshot `update` installed, if readable.
    public func installedState() -> InstalledState? { Self.readJSON(stateFile) }

    /// Replaces the installed-state record.
    public func write(_ state: InstalledState) throws { try Self.writeJSON(state, to: stateFile) }

    private static func readJSON<Record: Decodable>(_ path: String) -> Record? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Record.self, from: data)
    }

    private static func writeJSON(_ record: some Encodable, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(record).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// What the cache knows about its copy of one URL: the validators for the next conditional
/// GET, and the copy's checksum.
public struct CacheMetadata: Codable, Sendable, Equatable {
    /// The URL fetched.
    public var url: String
    /// The server's `ETag`, sent back as `If-None-Match`.
    public var etag: String?
    /// The server's `Last-Modified`, sent back as `If-Modified-Since`.
    public var lastModified: String?
    /// When the copy was last fetched or revalidated (a 304 counts), Unix seconds.
    public var fetchedAt: UInt64
    /// SHA-256 of the copy, hex.
    public var sha256: String
    /// The copy's size in bytes.
    public var size: UInt64

    /// Creates a record.
    public init(url: String, etag: String?, lastModified: String?, fetchedAt: UInt64, sha256: String, size: UInt64) {
        self.url = url
        self.etag = etag
        self.lastModified = lastModified
        self.fetchedAt = fetchedAt
        self.sha256 = sha256
        self.size = size
    }

    /// The fetch as the snapshot's provenance records it.
    public var fetch: SourceFetch { SourceFetch(url: url, etag: etag, lastModified: lastModified, fetchedAt: fetchedAt) }
}

/// The snapshot `update` last installed and what it was compiled from: when the snapshot file
/// still holds exactly these bytes and the inputs digest is the same, nothing changed and
/// nothing is installed.
public struct InstalledState: Codable, Sendable, Equatable {
    /// SHA-256 of the installed bytes, hex.
    public var snapshotSHA256: String
    /// ``inputsDigest(_:)`` of what it was compiled from.
    public var inputs: String

    /// Creates a record.
    public init(snapshotSHA256: String, inputs: String) {
        self.snapshotSHA256 = snapshotSHA256
        self.inputs = inputs
    }

    /// One digest of a compile's inputs, given as (name, SHA-256 hex) pairs in reading order:
    /// the config's text, each local file, each URL with its copy's digest. Any change to a
    /// byte, a name or the order changes it.
    public static func inputsDigest(_ inputs: [(name: String, sha256: String)]) -> String {
        var hasher = SHA256Digest()
        for input in inputs { hasher.update(Array("\(input.name)\u{0}\(input.sha256)\n".utf8)) }
        return HexDigits.encode(hasher.finalize())
    }
}
