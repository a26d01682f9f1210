import ArgumentParser
import Foundation
import RedirectorCore

/// `redirector inspect`: what a snapshot holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show a snapshot's size, matcher statistics, providers, routes and compile report.")

    @Argument(help: "The snapshot.")
    var snapshot: String

    @Flag(help: "List every host the snapshot can redirect to (for firewall allow-lists), one origin per line.")
    var destinations = false

    @Flag(help: "Print only where each source came from (the snapshot's provenance).")
    var provenance = false

    @Flag(help: "With --destinations: a JSON array of {origin, scheme, host, port, urls}; with --provenance: a JSON object of the compile time and the sources.")
    var json = false

    func validate() throws {
        if json && !destinations && !provenance { throw ValidationError("--json goes with --destinations or --provenance") }
        if destinations && provenance { throw ValidationError("--destinations and --provenance are separate listings") }
    }

    func run() throws {
        let table = try openSnapshot(snapshot)
        if destinations {
            printDestinations(table.destinations())
            return
        }
        if provenance {
            json ? print(provenanceJSON(table)) : printProvenance(table)
            return
        }
        let strings = table.strings
        print("snapshot \(table.path): format \(SnapshotFormat.version), \(table.byteCount) bytes, checksum \(String(table.checksum, radix: 16)), created \(table.createdAt)")
        let (v4, v6) = table.prefixCounts
        for (name, count, matcher) in [("IPv4", v4, table.ipv4), ("IPv6", v6, table.ipv6)] {
            let (answers, lengths) = (matcher.answers, matcher.lengths)
            print("\(name): \(count) prefixes, \(answers.nodeCount) nodes, \(answers.leafCount) leaves"
                + " (explanation trie: \(lengths.nodeCount) nodes, \(lengths.leafCount) leaves)")
            guard count > 0 else { continue }
            print("\(name) matcher: \(answers.byteCount) bytes, \(String(format2: Double(answers.byteCount) / Double(count))) bytes per prefix"
                + " (explanation trie: \(lengths.byteCount) bytes, \(String(format2: Double(lengths.byteCount) / Double(count))) per prefix)")
        }
        if v4 + v6 > 0 {
            print("snapshot: \(String(format2: Double(table.byteCount) / Double(v4 + v6))) bytes per prefix (matchers, attributes, policy)")
        }
        print("attributes: \(table.attributeCount)")
        print("providers:")
        for (index, provider) in table.policy.providers.enumerated() {
            var line = "  [\(index)] \(strings.string(provider.name))\(provider.isActive ? "" : " (inactive)") priority=\(provider.priority)"
            if !provider.targets.registry.isEmpty { line += " registry=\(table.describe(provider.targets.registry))" }
            if !provider.targets.artifacts.isEmpty { line += " artifacts=\(table.describe(provider.targets.artifacts))" }
            if !provider.regionTargets.isEmpty { line += " regions=\(provider.regionTargets.count)" }
            if !provider.regionOrders.isEmpty { line += " nearest-region=\(provider.regionOrders.count) located regions" }
            print(line)
        }
        let named = table.policy.pools.filter { !$0.name.isEmpty }
        if !named.isEmpty {
            print("pools:")
            for pool in named {
                var line = "  \(strings.string(pool.name))"
                switch pool.fallback {
                case .chain: break
                case .pass: line += " fallback=pass"
                case .pool(let next): line += " fallback=\(table.describe(next))"
                }
                print(line)
                for member in pool.members {
                    var text = "    [\(member.slot)] \(strings.string(member.url)) weight=\(member.weight) priority=\(member.priority)"
                    if let check = member.health {
                        text += " health=\(strings.string(check.method)) \(strings.string(check.url)) every \(check.intervalMilliseconds) ms"
                            + " (timeout \(check.timeoutMilliseconds) ms, rise \(check.rise), fall \(check.fall))"
                    }
                    print(text)
                }
            }
        }
        print("routes:")
        for (index, route) in table.policy.routes.enumerated() {
            print("  [\(index)] \(strings.string(route.name))")
        }
        printProvenance(table)
        print("report:")
        for line in table.report.split(separator: "\n") { print("  \(line)") }
    }
}

extension InspectCommand {
    /// The destinations as text or JSON.
    func printDestinations(_ list: [Destination]) {
        guard json else {
            for destination in list { print(destination.origin) }
            return
        }
        let items = list.map { destination in
            let urls = destination.urls.map(TextEscaping.jsonString).joined(separator: ", ")
            return "  {\"origin\": \(TextEscaping.jsonString(destination.origin)), \"scheme\": \(TextEscaping.jsonString(destination.scheme)), "
                + "\"host\": \(TextEscaping.jsonString(destination.host)), \"port\": \(destination.port), \"urls\": [\(urls)]}"
        }
        print(items.isEmpty ? "[]" : "[\n" + items.joined(separator: ",\n") + "\n]")
    }
}

extension InspectCommand {
    /// Unix seconds as ISO 8601 UTC.
    static func time(_ seconds: UInt64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// The provenance as text: one block per source file.
    func printProvenance(_ table: Snapshot) {
        print("compiled: \(InspectCommand.time(table.createdAt))")
        guard !table.sources.isEmpty else {
            print("sources: none recorded (compiled by a build without provenance)")
            return
        }
        print("sources:")
        for (index, source) in table.sources.enumerated() {
            var line = "  [\(index)] \(source.name) format=\(source.format) prefixes=\(source.prefixCount) size=\(source.size) sha256=\(source.sha256Hex)"
            line += " version=\(source.publisherVersion ?? "-") published=\(source.publishedAt.map(InspectCommand.time) ?? "-")"
            print(line)
            print("      place=\(source.place) path=\(source.path)")
            if let url = source.url {
                print("      url=\(url) etag=\(source.etag ?? "-") last-modified=\(source.lastModified ?? "-") fetched=\(source.fetchedAt.map(InspectCommand.time) ?? "-")")
            }
            let age = Int64(Date().timeIntervalSince1970) - Int64(source.dataTime(compiledAt: table.createdAt))
            print("      age=\(age)s (from the \(source.dataTimeBasis) time)")
        }
    }

    /// The provenance as one JSON object: `compiledAt` and `sources` (times in Unix seconds, `null` when unknown).
    func provenanceJSON(_ table: Snapshot) -> String {
        let quote = TextEscaping.jsonString
        func text(_ value: String?) -> String { value.map(quote) ?? "null" }
        func number(_ value: UInt64?) -> String { value.map { "\($0)" } ?? "null" }
        let items = table.sources.map { source in
            "    {\"name\": \(quote(source.name)), \"place\": \(quote(source.place)), \"path\": \(quote(source.path)), "
                + "\"format\": \(quote(source.format)), \"url\": \(text(source.url)), \"etag\": \(text(source.etag)), "
                + "\"lastModified\": \(text(source.lastModified)), \"fetchedAt\": \(number(source.fetchedAt)), "
                + "\"sha256\": \(quote(source.sha256Hex)), \"size\": \(source.size), \"publisherVersion\": \(text(source.publisherVersion)), "
                + "\"publishedAt\": \(number(source.publishedAt)), \"prefixes\": \(source.prefixCount), "
                + "\"ageFrom\": \(quote(source.dataTimeBasis)), \"dataTime\": \(source.dataTime(compiledAt: table.createdAt))}"
        }
        return "{\"compiledAt\": \(table.createdAt), \"sources\": [" + (items.isEmpty ? "" : "\n" + items.joined(separator: ",\n") + "\n  ") + "]}"
    }
}

extension String {
    /// A number with two decimals.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
