import Foundation
import RedirectorCore

/// Builds the provenance record of one source file the compiler read.
enum ProvenanceRecorder {
    /// The record of `file` (an absolute, standardized path), configured at `place` with
    /// `format`, as imported into `data`. `fetch` is how `redirector update` obtained it.
    /// `baseDirectory` is the config's: a local file is named by its path relative to it.
    static func record(file: String, format: String, place: String, data: ImportedData, fetch: SourceFetch?,
                       baseDirectory: URL) throws -> SourceProvenance {
        let (digest, size) = try digest(of: file)
        // Relative to the config's directory when inside it (as a config beside its data names
        // it), else absolute: unambiguous in a metrics label either way.
        let base = baseDirectory.standardizedFileURL.path
        let relative = file.hasPrefix(base + "/") ? String(file.dropFirst(base.count + 1)) : file
        // Every string reaches `inspect`, a log line or a metrics label: control bytes are
        // shown escaped rather than refused (a path or ETag is not worth failing a compile).
        func clean(_ text: String?) -> String? { text.map(SnapshotText.escaped) }
        return SourceProvenance(
            name: SnapshotText.escaped(fetch?.url ?? relative), place: SnapshotText.escaped(place), path: SnapshotText.escaped(file),
            format: format, url: clean(fetch?.url), etag: clean(fetch?.etag), lastModified: clean(fetch?.lastModified),
            fetchedAt: fetch?.fetchedAt, sha256: digest, size: size, publisherVersion: clean(data.publisherVersion),
            publishedAt: data.publishedAt, prefixCount: data.prefixes.count)
    }

    /// SHA-256 and size of the file's bytes on disk (a compressed dump's, as `sha256sum` shows),
    /// read in chunks so a large dump is not held twice.
    static func digest(of file: String) throws -> (sha256: [UInt8], size: UInt64) {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw ImportError(origin: file, message: "cannot open to checksum") }
        defer { try? handle.close() }
        var hasher = SHA256Digest()
        var size: UInt64 = 0
        do {
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                chunk.withUnsafeBytes { hasher.update($0) }
                size += UInt64(chunk.count)
            }
        } catch {
            throw ImportError(origin: file, message: "cannot read to checksum: \(error)")
        }
        return (hasher.finalize(), size)
    }
}
