import Foundation
import RedirectorCore

/// Compiles a config and its sources into snapshot contents.
///
/// Prefix ownership rule (documented in README.md): when several entries claim the same prefix the
/// winner is, in order, (1) the entry of the provider with the higher `priority`, (2) an entry with
/// a provider over one without, (3) an entry with a region over one without, (4) the provider
/// declared first, (5) the entry read first. Conflicts between providers are listed in the report.
public struct SnapshotCompiler {
    /// The config's directory; relative source paths are resolved against it.
    let baseDirectory: URL
    let config: Config
    let configName: String

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
        var strings = StringTableBuilder()
        var report: [String] = []

        // Providers: declared ones first, then those named by top-level sources.
        var providers = Providers()
        for (index, entry) in (config.providers ?? []).enumerated() {
            guard !entry.name.isEmpty, providers.index[entry.name] == nil else {
                throw ConfigError(place: "\(configName): providers[\(index)].name", message: "empty or duplicate provider name '\(entry.name)'")
            }
            providers.add(entry.name, config: entry)
        }

        // Sources.
        var candidates: [Candidate] = []
        var claims: [ASNClaim] = []
        var hints: [ProviderHint] = []
        func take(_ data: ImportedData, owner: String?, place: String) throws {
            report.append(contentsOf: data.notes)
            for hint in data.hints {
                if providers.index[hint.provider] == nil { providers.add(hint.provider, config: nil) }
                hints.append(hint)
            }
            for claim in data.asnClaims {
                if providers.index[claim.provider] == nil { providers.add(claim.provider, config: nil) }
                claims.append(claim)
            }
            for record in data.prefixes {
                guard let name = record.provider ?? owner else {
                    throw ConfigError(place: place, message: "\(record.origin): prefix \(record.prefix) names no provider")
                }
                if providers.index[name] == nil { providers.add(name, config: nil) }
                candidates.append(Candidate(prefix: record.prefix, provider: providers.index[name] ?? -1,
                                            region: record.region ?? "", asn: record.asn ?? 0, order: candidates.count))
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

        // ASN table: prefixes of claimed ASNs belong to the claiming provider.
        var asnOwner: [UInt32: Int32] = [:]
        for claim in claims {
            let index = providers.index[claim.provider] ?? -1
            if let existing = asnOwner[claim.asn], existing != index {
                let winner = providers.better(existing, index) ? existing : index
                report.append("conflict: AS\(claim.asn) is claimed by \(providers.names[Int(existing)]) and \(claim.provider) (\(claim.origin)); \(providers.names[Int(winner)]) wins by the ownership rule")
                asnOwner[claim.asn] = winner
            } else {
                asnOwner[claim.asn] = index
            }
        }
        var asnTree4 = BinaryRadixTree(family: 4)
        var asnTree6 = BinaryRadixTree(family: 6)
        let keepUnassigned = config.keepUnassignedPrefixes ?? true
        for (index, source) in (config.asnTable ?? []).enumerated() {
            for data in try importSource(source, place: "\(configName): asnTable[\(index)]") {
                report.append(contentsOf: data.notes)
                for record in data.prefixes {
                    guard let asn = record.asn else { continue }
                    asnTree4.insert(record.prefix, value: asn)
                    asnTree6.insert(record.prefix, value: asn)
                    if let owner = asnOwner[asn] {
                        candidates.append(Candidate(prefix: record.prefix, provider: owner, region: record.region ?? "",
                                                    asn: asn, order: candidates.count))
                    } else if keepUnassigned {
                        candidates.append(Candidate(prefix: record.prefix, provider: -1, region: record.region ?? "",
                                                    asn: asn, order: candidates.count))
                    }
                }
            }
        }

        // One owner per prefix.
        var winners: [IPPrefix: Candidate] = [:]
        winners.reserveCapacity(candidates.count)
        var conflicts = 0
        for candidate in candidates {
            guard let existing = winners[candidate.prefix] else {
                winners[candidate.prefix] = candidate
                continue
            }
            let keep = providers.prefers(existing, over: candidate)
            if existing.provider != candidate.provider && existing.provider >= 0 && candidate.provider >= 0 {
                conflicts += 1
                if conflicts <= 50 {
                    let winner = keep ? existing : candidate
                    report.append("conflict: \(candidate.prefix) is claimed by \(providers.names[Int(existing.provider)]) and \(providers.names[Int(candidate.provider)]); \(providers.names[Int(winner.provider)]) wins by the ownership rule")
                }
            }
            if !keep { winners[candidate.prefix] = candidate }
        }
        if conflicts > 50 { report.append("conflict: … and \(conflicts - 50) more prefixes claimed by two providers") }

        // Attributes (sorted by provider, as the format requires) and matchers.
        let owned = winners.values.sorted { $0.prefix < $1.prefix }
        let attributeOf = owned.map { candidate in
            var asn = candidate.asn
            if asn == 0 {
                let tree = candidate.prefix.network.family == 4 ? asnTree4 : asnTree6
                asn = tree.longestMatch(candidate.prefix.network).map { $0.value } ?? 0
            }
            return MatchAttributes(provider: candidate.provider, region: strings.intern(candidate.region), asn: asn)
        }
        let attributes = Set(attributeOf).sorted {
            ($0.provider, $0.region.offset, $0.asn) < ($1.provider, $1.region.offset, $1.asn)
        }
        guard attributes.count <= Int(PackedMatch.maximumValue) + 1, providers.names.count <= Int(Int16.max),
              Set(attributes.map(\.region)).count <= Int(UInt16.max) else {
            throw ConfigError(place: configName, message: "too many providers, regions or provider/region/ASN combinations for the snapshot format")
        }
        let attributeIndex = Dictionary(uniqueKeysWithValues: attributes.enumerated().map { ($1, UInt32($0)) })
        var entries4: [(prefix: IPPrefix, value: UInt32)] = []
        var entries6: [(prefix: IPPrefix, value: UInt32)] = []
        for (candidate, attribute) in zip(owned, attributeOf) {
            let value = attributeIndex[attribute] ?? 0
            if candidate.prefix.network.family == 4 {
                entries4.append((candidate.prefix, value))
            } else {
                entries6.append((candidate.prefix, value))
            }
        }

        let policy = try PolicyCompiler(config: config, configName: configName, baseDirectory: baseDirectory,
                                        providerNames: providers.names, providerConfigs: providers.configs, hints: hints)
            .compile(strings: &strings)

        // Every string reaches a header, a variable or a log line: no control bytes (the loader
        // rejects them too; here the message can name the text).
        for text in strings.bytes.split(separator: 0) {
            let value = String(decoding: text, as: UTF8.self)
            if let byte = SnapshotText.controlByte(in: value) {
                throw ConfigError(place: configName, message: "'\(SnapshotText.escaped(value))' (a name, region, target, method, path or header) contains control byte 0x\(String(byte, radix: 16))")
            }
        }

        var counts: [Int32: Int] = [:]
        for candidate in winners.values { counts[candidate.provider, default: 0] += 1 }
        var summary = ["prefixes: \(entries4.count) IPv4, \(entries6.count) IPv6; attributes: \(attributes.count)"]
        for (index, name) in providers.names.enumerated() {
            summary.append("provider \(name): \(counts[Int32(index)] ?? 0) prefixes")
        }
        if let unassigned = counts[-1] { summary.append("no provider (ASN only): \(unassigned) prefixes") }
        return SnapshotContents(
            strings: strings, attributes: attributes,
            ipv4: PoptrieBuilder.build(family: 4, entries: entries4),
            ipv6: PoptrieBuilder.build(family: 6, entries: entries6),
            prefixCounts: (entries4.count, entries6.count), policy: policy,
            report: (summary + report).joined(separator: "\n"), createdAt: createdAt)
    }

    /// Imports one source entry; a `k8s-asns` directory yields one result per `*.yaml` file.
    func importSource(_ source: SourceConfig, place: String) throws -> [ImportedData] {
        guard let importer = SourceImporters.importer(for: source.format) else {
            let known = SourceImporters.all.map(\.format).joined(separator: ", ")
            throw ConfigError(place: "\(place).format", message: "unknown format '\(source.format)' (known: \(known))")
        }
        let url = URL(fileURLWithPath: source.path, relativeTo: baseDirectory).standardizedFileURL
        var files = [url.path]
        var isDirectory: ObjCBool = false
        if importer.readsDirectories, FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory),
           isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
            files = names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { url.appendingPathComponent($0).path }
            guard !files.isEmpty else { throw ConfigError(place: "\(place).path", message: "directory \(url.path) has no *.yaml files") }
        }
        var options = SourceOptions()
        options.services = source.services ?? []
        options.tags = source.tags ?? []
        options.region = source.region
        return try files.map { file in
            do {
                return try importer.parse(try SourceFile.read(file), name: file, options: options)
            } catch let error as ImportError {
                throw ConfigError(place: place, message: error.description)
            }
        }
    }
}

/// A prefix with its would-be owner, before conflicts are resolved.
struct Candidate {
    var prefix: IPPrefix
    var provider: Int32
    var region: String
    var asn: UInt32
    var order: Int
}

/// Providers in declaration order, with their config entries.
struct Providers {
    var names: [String] = []
    var configs: [ProviderConfig?] = []
    var index: [String: Int32] = [:]

    mutating func add(_ name: String, config: ProviderConfig?) {
        index[name] = Int32(names.count)
        names.append(name)
        configs.append(config)
    }

    func priority(_ provider: Int32) -> Int32 {
        provider < 0 ? Int32.min : configs[Int(provider)]?.priority ?? 0
    }

    /// Whether provider `a` beats provider `b` for an ASN or prefix.
    func better(_ a: Int32, _ b: Int32) -> Bool {
        if priority(a) != priority(b) { return priority(a) > priority(b) }
        if (a >= 0) != (b >= 0) { return a >= 0 }
        return a <= b
    }

    /// The ownership rule for one prefix.
    func prefers(_ a: Candidate, over b: Candidate) -> Bool {
        if priority(a.provider) != priority(b.provider) { return priority(a.provider) > priority(b.provider) }
        if (a.provider >= 0) != (b.provider >= 0) { return a.provider >= 0 }
        if a.region.isEmpty != b.region.isEmpty { return !a.region.isEmpty }
        if a.provider != b.provider { return a.provider < b.provider }
        return a.order < b.order
    }
}
