import Foundation
import RedirectorCore

/// Builds the provenance record of one source file the compiler read.
enum ProvenanceRecorder {
    /// The record of `input` (an absolute, standardized path, and for a URL source how it was
    /// fetched), configured at `place` with `format`, as imported into `data`. `baseDirectory`
    /// is the config's: a local file is named by its path relative to it.
    static func record(input: SourceInput, format: String, place: String, data: ImportedData,
                       baseDirectory: URL) throws -> SourceProvenance {
        let (digest, size) = try SHA256Digest.file(input.file)
        let file = input.path
        let fetch = input.fetch
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
}
