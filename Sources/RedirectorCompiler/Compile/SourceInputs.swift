import Foundation

/// A URL source's local copy, as `redirector update` (a download) or `compile --cache` (the
/// cache entry) hands it to the compiler.
public struct FetchedSource: Sendable, Equatable {
    /// The file to read: the cache entry, or a download not yet promoted into the cache.
    public var file: String
    /// The path the provenance records: the cache entry the file is, or is promoted to.
    public var cachePath: String
    /// How it was obtained.
    public var fetch: SourceFetch

    /// Creates a record.
    public init(file: String, cachePath: String, fetch: SourceFetch) {
        self.file = file
        self.cachePath = cachePath
        self.fetch = fetch
    }
}

/// A source entry of the config that names a URL.
public struct URLSource: Sendable, Equatable {
    /// The URL, checked to be http or https.
    public var url: String
    /// The entry's `format:`.
    public var format: String
    /// Where the config names it, e.g. `redirector.yaml: providers[0].sources[1]`.
    public var place: String
}

/// One file a source entry reads.
struct SourceInput {
    /// The file read.
    var file: String
    /// The path the provenance records (differs from `file` for a download not yet in the cache).
    var path: String
    /// How it was fetched, for a URL source.
    var fetch: SourceFetch?
}

extension SnapshotCompiler {
    /// Every source entry with its place, in compile order: providers' sources, top-level
    /// sources, the ASN table; an entry whose `otherwise` is read (``fallback(of:)``) stands as it.
    func sourceEntries() -> [(place: String, source: SourceConfig)] {
        var entries: [(String, SourceConfig)] = []
        func add(_ place: String, _ source: SourceConfig) {
            if let fallback = fallback(of: source) {
                entries.append(("\(place).otherwise", fallback.source))
            } else {
                entries.append((place, source))
            }
        }
        for (index, provider) in (config.providers ?? []).enumerated() {
            for (sourceIndex, source) in (provider.sources ?? []).enumerated() {
                add("\(configName): providers[\(index)].sources[\(sourceIndex)]", source)
            }
        }
        for (index, source) in (config.sources ?? []).enumerated() { add("\(configName): sources[\(index)]", source) }
        for (index, source) in (config.asnTable ?? []).enumerated() { add("\(configName): asnTable[\(index)]", source) }
        return entries
    }

    /// The entry's `otherwise`, when it is the one to read: the entry has no fetched copy and its
    /// `path` does not exist (`missing`, as an absolute path).
    func fallback(of source: SourceConfig) -> (source: SourceConfig, missing: String)? {
        guard let otherwise = source.otherwise?.source, let path = source.path,
              source.url.map({ fetched[$0] == nil }) ?? true else { return nil }
        let file = URL(fileURLWithPath: path, relativeTo: baseDirectory).standardizedFileURL.path
        return FileManager.default.fileExists(atPath: file) ? nil : (otherwise, file)
    }

    /// The URL sources, each URL once (as its first entry names it), their URLs and formats checked.
    public func urlSources() throws -> [URLSource] {
        var seen: Set<String> = []
        var sources: [URLSource] = []
        for (place, source) in sourceEntries() {
            _ = try importer(of: source, place: place)
            guard let url = try source.checkedURL(place: place), seen.insert(url).inserted else { continue }
            sources.append(URLSource(url: url, format: source.format, place: place))
        }
        return sources
    }

    /// Every local file a compile reads for the sources without a URL (each `*.yaml` of a
    /// directory on its own) and the region tables, as absolute paths in reading order.
    public func localFiles() throws -> [String] {
        var files: [String] = []
        for (place, source) in sourceEntries() where source.url == nil {
            files += try inputs(of: source, place: place, importer: importer(of: source, place: place)).map(\.file)
        }
        for provider in config.providers ?? [] {
            if let table = provider.regionTable {
                files.append(URL(fileURLWithPath: table.path, relativeTo: baseDirectory).standardizedFileURL.path)
            }
        }
        return files
    }

    /// The importer of the entry's format.
    func importer(of source: SourceConfig, place: String) throws -> any SourceImporter {
        guard let importer = SourceImporters.importer(for: source.format) else {
            let known = SourceImporters.all.map(\.format).joined(separator: ", ")
            throw ConfigError(place: "\(place).format", message: "unknown format '\(source.format)' (known: \(known))")
        }
        return importer
    }

    /// The files a source entry reads: a URL source's fetched copy when there is one, else its
    /// `path` (a directory's `*.yaml` files for an importer that reads directories).
    func inputs(of source: SourceConfig, place: String, importer: any SourceImporter) throws -> [SourceInput] {
        if let url = try source.checkedURL(place: place) {
            if let copy = fetched[url] { return [SourceInput(file: copy.file, path: copy.cachePath, fetch: copy.fetch)] }
            guard source.path != nil else {
                throw ConfigError(place: "\(place).url", message: "\(url) has no local copy: run `redirector update` to fetch it (or `redirector compile --cache DIR` with update's cache)")
            }
        }
        guard let path = source.path else { throw ConfigError(place: place, message: "a source needs a `path` or a `url`") }
        let url = URL(fileURLWithPath: path, relativeTo: baseDirectory).standardizedFileURL
        var files = [url.path]
        var isDirectory: ObjCBool = false
        if importer.readsDirectories, FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory),
           isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
            files = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { url.appendingPathComponent($0).path }
            guard !files.isEmpty else { throw ConfigError(place: "\(place).path", message: "directory \(url.path) has no *.yaml files") }
        }
        return files.map { SourceInput(file: $0, path: $0, fetch: nil) }
    }
}
