import Foundation
import RedirectorCore

/// Compiles a config and its sources into snapshot contents, in named stages: declare providers,
/// import sources, resolve ASN claims, import the ASN table, give each prefix one owner
/// (``OwnershipRule``), build the match attributes, compile the policy, check the strings.
public struct SnapshotCompiler {
    /// The config's directory; relative source paths are resolved against it.
    let baseDirectory: URL
    let config: Config
    let configName: String
    /// The local copy of each URL source, by URL (`redirector update` and `compile --cache` set
    /// it; the provenance section records how it was fetched). A URL source missing here is read
    /// from its `path`, or is an error telling to run `redirector update`.
    public var fetched: [String: FetchedSource] = [:]
    /// Most bytes a source may hold once decompressed (nil: no limit); `update` sets its `--max-bytes`.
    public var maximumSourceBytes: Int?

    /// A compiler for the config at `path`.
    public init(configPath path: String) throws {
        self.config = try Config.load(path: path)
        self.configName = path
        self.baseDirectory = URL(fileURLWithPath: path).deletingLastPathComponent()
    }

    /// A compiler for an already decoded config named `name`, with relative paths resolved
    /// against `baseDirectory` (used by the fuzzer and by tools that hold the config in memory).
    public init(config: Config, name: String, baseDirectory: String) {
        self.config = config
        self.configName = name
        self.baseDirectory = URL(fileURLWithPath: baseDirectory, isDirectory: true)
    }

    /// Compiles, stamping `createdAt` (Unix seconds).
    public func compile(createdAt: UInt64 = UInt64(Date().timeIntervalSince1970)) throws -> SnapshotContents {
        if let version = config.version, version != 1 {
            throw ConfigError(place: "\(configName): version", message: "unsupported config version \(version) (this build reads 1)")
        }
        var report: [String] = []
        var providers = try declaredProviders()
        var imported = try importSources(providers: &providers, report: &report)
        let asnOwners = resolveASNClaims(imported.claims, providers: providers, report: &report)
        let asnTable = try importASNTable(owners: asnOwners, into: &imported, report: &report)
        let owned = OwnershipRule(providers: providers).resolve(imported.candidates, report: &report)

        var strings = StringTableBuilder()
        let matches = try MatchTable(owned: owned, asnTable: asnTable, providerCount: providers.names.count,
                                     strings: &strings, configName: configName)
        var prefixRegions: [Int32: Set<String>] = [:]
        for candidate in owned where candidate.provider >= 0 && !candidate.region.isEmpty {
            prefixRegions[candidate.provider, default: []].insert(candidate.region)
        }
        let policy = try PolicyCompiler(config: config, configName: configName, baseDirectory: baseDirectory,
                                        providerNames: providers.names, providerConfigs: providers.configs,
                                        hints: imported.hints, prefixRegions: prefixRegions)
            .compile(strings: &strings)
        try checkStrings(strings)

        var counts: [Int32: Int] = [:]
        for candidate in owned { counts[candidate.provider, default: 0] += 1 }
        var summary = ["prefixes: \(matches.entries4.count) IPv4, \(matches.entries6.count) IPv6; attributes: \(matches.attributes.count)"]
        for (index, name) in providers.names.enumerated() {
            summary.append("provider \(name): \(counts[Int32(index)] ?? 0) prefixes")
        }
        if let unassigned = counts[-1] { summary.append("no provider (ASN only): \(unassigned) prefixes") }
        return SnapshotContents(
            strings: strings, attributes: matches.attributes,
            ipv4: PoptrieBuilder.build(family: .v4, entries: matches.entries4, valueCount: matches.attributes.count),
            ipv6: PoptrieBuilder.build(family: .v6, entries: matches.entries6, valueCount: matches.attributes.count),
            prefixCounts: (matches.entries4.count, matches.entries6.count), policy: policy,
            report: (summary + report).joined(separator: "\n"), createdAt: createdAt,
            sources: imported.sources, attributeSources: matches.attributeSources)
    }

    /// Stage 1: the providers the config declares, in order.
    func declaredProviders() throws -> Providers {
        var providers = Providers()
        for (index, entry) in (config.providers ?? []).enumerated() {
            guard !entry.name.isEmpty, providers.index[entry.name] == nil else {
                throw ConfigError(place: "\(configName): providers[\(index)].name", message: "empty or duplicate provider name '\(entry.name)'")
            }
            providers.add(entry.name, config: entry)
        }
        return providers
    }

    /// What the sources (per provider and top-level) yield, before ownership is resolved.
    struct ImportedSources {
        var candidates: [Candidate] = []
        var claims: [ASNClaim] = []
        var hints: [ProviderHint] = []
        /// Provenance of every file read (providers' sources, top-level sources, ASN table).
        var sources: [SourceProvenance] = []

        /// Records `data`'s provenance; returns its index for the candidates it yields.
        mutating func record(_ data: ImportedData, place: String) throws -> UInt16 {
            guard let provenance = data.provenance else { return ProvenanceSection.noSource }
            guard sources.count < ProvenanceSection.maximumSources else {
                throw ConfigError(place: place, message: "more than \(ProvenanceSection.maximumSources) source files")
            }
            sources.append(provenance)
            return UInt16(sources.count - 1)
        }
    }

    /// Stage 2: every provider's sources, then the top-level sources. Providers first named by a
    /// source are added after the declared ones.
    func importSources(providers: inout Providers, report: inout [String]) throws -> ImportedSources {
        var imported = ImportedSources()
        func take(_ data: ImportedData, owner: String?, place: String) throws {
            report.append(contentsOf: data.notes)
            let source = try imported.record(data, place: place)
            for hint in data.hints {
                providers.addIfMissing(hint.provider)
                imported.hints.append(hint)
            }
            for claim in data.asnClaims {
                providers.addIfMissing(claim.provider)
                imported.claims.append(claim)
            }
            for record in data.prefixes {
                guard let name = record.provider ?? owner else {
                    throw ConfigError(place: place, message: "\(record.origin): prefix \(record.prefix) names no provider")
                }
                let provider = providers.addIfMissing(name)
                imported.candidates.append(Candidate(prefix: record.prefix, provider: provider, region: record.region ?? "",
                                                     asn: record.asn ?? 0, order: imported.candidates.count, source: source))
            }
        }
        for (index, entry) in (config.providers ?? []).enumerated() {
            for (sourceIndex, source) in (entry.sources ?? []).enumerated() {
                let place = "\(configName): providers[\(index)].sources[\(sourceIndex)]"
                for data in try importSource(source, place: place) { try take(data, owner: entry.name, place: place) }
            }
        }
        for (index, source) in (config.sources ?? []).enumerated() {
            let place = "\(configName): sources[\(index)]"
            for data in try importSource(source, place: place) { try take(data, owner: nil, place: place) }
        }
        return imported
    }

    /// Stage 3: one provider per claimed ASN, by the ownership rule; conflicts are reported.
    func resolveASNClaims(_ claims: [ASNClaim], providers: Providers, report: inout [String]) -> [UInt32: Int32] {
        let rule = OwnershipRule(providers: providers)
        var owners: [UInt32: Int32] = [:]
        for claim in claims {
            let index = providers.index[claim.provider] ?? -1
            guard let existing = owners[claim.asn], existing != index else {
                owners[claim.asn] = index
                continue
            }
            let winner = rule.prefers(provider: existing, over: index) ? existing : index
            report.append("conflict: AS\(claim.asn) is claimed by \(providers.names[Int(existing)]) and \(claim.provider) (\(claim.origin)); \(providers.names[Int(winner)]) wins by the ownership rule")
            owners[claim.asn] = winner
        }
        return owners
    }

    /// Stage 4: the ASN table. Its prefixes become candidates of the provider that claims their
    /// ASN (or of no provider, with `keepUnassignedPrefixes`); the returned trees give every other
    /// candidate without an ASN the ASN of its longest covering table prefix.
    func importASNTable(owners: [UInt32: Int32], into imported: inout ImportedSources,
                        report: inout [String]) throws -> ASNPrefixTable {
        var table = ASNPrefixTable()
        let keepUnassigned = config.keepUnassignedPrefixes ?? true
        for (index, source) in (config.asnTable ?? []).enumerated() {
            let place = "\(configName): asnTable[\(index)]"
            for data in try importSource(source, place: place) {
                report.append(contentsOf: data.notes)
                let sourceIndex = try imported.record(data, place: place)
                for record in data.prefixes {
                    guard let asn = record.asn else { continue }
                    table.insert(record.prefix, asn: asn)
                    let owner = owners[asn]
                    guard owner != nil || keepUnassigned else { continue }
                    imported.candidates.append(Candidate(prefix: record.prefix, provider: owner ?? -1, region: record.region ?? "",
                                                         asn: asn, order: imported.candidates.count, source: sourceIndex,
                                                         fromASNTable: true))
                }
            }
        }
        return table
    }

    /// Stage 7: every string reaches a header, a variable or a log line, so none may hold a
    /// control byte (the loader rejects them too; here the message can name the text).
    func checkStrings(_ strings: StringTableBuilder) throws {
        for text in strings.bytes.split(separator: 0) {
            let value = String(decoding: text, as: UTF8.self)
            if let byte = SnapshotText.controlByte(in: value) {
                throw ConfigError(place: configName, message: "'\(SnapshotText.escaped(value))' (a name, region, target, method, path or header) contains control byte 0x\(String(byte, radix: 16))")
            }
        }
    }

    /// Imports one source entry; a `k8s-asns` directory yields one result per `*.yaml` file.
    func importSource(_ source: SourceConfig, place: String) throws -> [ImportedData] {
        if let fallback = fallback(of: source) {
            var data = try importSource(fallback.source, place: "\(place).otherwise")
            data[0].notes.insert("\(place): \(fallback.missing) not found: read its 'otherwise' (\(fallback.source.format) \(fallback.source.path ?? fallback.source.url ?? "-"))", at: 0)
            return data
        }
        let importer = try importer(of: source, place: place)
        var options = SourceOptions()
        options.services = source.services ?? []
        options.tags = source.tags ?? []
        options.region = source.region
        if !importer.selectsNetworks, source.asns != nil || source.countries != nil {
            throw ConfigError(place: place, message: "'asns' and 'countries' select networks of a location-db source; format \(source.format) has none")
        }
        options.asns = source.asns.map(Set.init)
        options.countries = source.countries.map { Set($0.map { $0.uppercased() }) }
        return try inputs(of: source, place: place, importer: importer).map { input in
            // A fetched source is named by its URL: its file may still be a download's temporary name.
            let name = input.fetch?.url ?? input.file
            do {
                var data = try importer.parse(try SourceFile.read(input.file, limit: maximumSourceBytes, name: name),
                                              name: name, options: options)
                data.provenance = try ProvenanceRecorder.record(input: input, format: source.format, place: place, data: data,
                                                                baseDirectory: baseDirectory)
                return data
            } catch let error as ImportError {
                throw ConfigError(place: place, message: error.description, source: name)
            }
        }
    }
}
