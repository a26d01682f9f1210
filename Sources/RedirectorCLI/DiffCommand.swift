import ArgumentParser
import RedirectorCore

/// `redirector diff OLD NEW`: what a data update changes.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what changed between two snapshots: prefixes per provider, redirect destinations, routes.",
        discussion: "Exits 0 when nothing changed and 1 when something did (like diff(1)); 2 or more on errors.")

    @Argument(help: "The snapshot before.")
    var old: String

    @Argument(help: "The snapshot after.")
    var new: String

    @Option(help: "How many changed prefixes to list (the counts cover them all).")
    var limit = 20

    @Flag(help: "JSON: counts per provider, every changed prefix, destinations and routes.")
    var json = false

    func run() throws {
        let diff = SnapshotDiff(old: try openSnapshot(old), new: try openSnapshot(new))
        print(json ? jsonText(diff) : text(diff), terminator: "")
        if !diff.isEmpty { throw ExitCode(1) }
    }

    /// An owner as `provider/region (ASn)`.
    func describe(_ owner: SnapshotDiff.Owner?) -> String {
        guard let owner else { return "-" }
        var text = owner.provider.isEmpty ? "(no provider)" : owner.provider
        if !owner.region.isEmpty { text += "/\(owner.region)" }
        if owner.asn != 0 { text += " AS\(owner.asn)" }
        return text
    }

    /// The report people read.
    func text(_ diff: SnapshotDiff) -> String {
        guard !diff.isEmpty else { return "no changes\n" }
        var out = "prefixes: \(diff.prefixes.count) changed\n"
        for counts in diff.providerCounts {
            out += "  \(counts.provider.isEmpty ? "(no provider)" : counts.provider): +\(counts.added) -\(counts.removed) ~\(counts.changed)\n"
        }
        for change in diff.prefixes.prefix(max(limit, 0)) {
            out += "  \(change.prefix): \(describe(change.old)) -> \(describe(change.new))\n"
        }
        if diff.prefixes.count > limit { out += "  ... \(diff.prefixes.count - max(limit, 0)) more (--limit, --json)\n" }
        for (label, list) in [("destinations added", diff.addedDestinations), ("destinations removed", diff.removedDestinations),
                              ("routes added", diff.addedRoutes), ("routes removed", diff.removedRoutes),
                              ("routes changed", diff.changedRoutes)] where !list.isEmpty {
            out += "\(label): \(list.joined(separator: " "))\n"
        }
        return out
    }

    /// The same as JSON.
    func jsonText(_ diff: SnapshotDiff) -> String {
        func strings(_ list: [String]) -> String { "[" + list.map(TextEscaping.jsonString).joined(separator: ", ") + "]" }
        func owner(_ owner: SnapshotDiff.Owner?) -> String {
            guard let owner else { return "null" }
            return "{\"provider\": \(TextEscaping.jsonString(owner.provider)), \"region\": \(TextEscaping.jsonString(owner.region)), \"asn\": \(owner.asn)}"
        }
        let providers = diff.providerCounts.map {
            "{\"provider\": \(TextEscaping.jsonString($0.provider)), \"added\": \($0.added), \"removed\": \($0.removed), \"changed\": \($0.changed)}"
        }
        let prefixes = diff.prefixes.map { "{\"prefix\": \"\($0.prefix)\", \"old\": \(owner($0.old)), \"new\": \(owner($0.new))}" }
        return """
            {"changed": \(!diff.isEmpty), "providers": [\(providers.joined(separator: ", "))],
             "destinations": {"added": \(strings(diff.addedDestinations)), "removed": \(strings(diff.removedDestinations))},
             "routes": {"added": \(strings(diff.addedRoutes)), "removed": \(strings(diff.removedRoutes)), "changed": \(strings(diff.changedRoutes))},
             "prefixes": [\(prefixes.joined(separator: ",\n  "))]}

            """
    }
}
