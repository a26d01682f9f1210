import ArgumentParser
import Foundation
import RedirectorAnalysis
import RedirectorCore

/// `redirector diff OLD NEW`: what a data update changes — in the snapshot, and with `--logs` for
/// real traffic.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what changed between two snapshots: prefixes per provider, redirect destinations, routes, and with --logs the traffic whose decision changes.",
        discussion: """
        With --logs, every logged request (formats as for analyze) is decided by both snapshots in one \
        pass, and requests and bytes are counted per (old outcome -> new outcome). An outcome is the \
        action with its status and, for redirects, the target base URL: `pass`, `respond 405`, \
        `redirect 302 https://mirror.example/`; the same target and status with a different Location \
        (rewrite template, keepQuery) also counts as a change.

        Exit status: 0 when nothing changed (the snapshots, and with --logs no request's decision), \
        1 when something did (like diff(1)); with --fail-over or --fail-over-bytes, 0 when the changed \
        share is at most the threshold and 3 when it exceeds it, whatever else changed; 2 on errors \
        (unreadable snapshot or log, no log line matching --format); 64 on usage errors.
        """)

    /// Exit status when a `--fail-over` threshold is exceeded.
    static let failOverExitCode: Int32 = 3
    /// Exit status on errors (1 means "changed").
    static let errorExitCode: Int32 = 2

    @Argument(help: "The snapshot before.")
    var old: String

    @Argument(help: "The snapshot after.")
    var new: String

    @Option(help: "How many changed prefixes, and with --logs outcome pairs, to list (the counts cover them all).")
    var limit = 20

    @Flag(help: "JSON: counts per provider, every changed prefix, destinations and routes; with --logs a \"traffic\" member.")
    var json = false

    @Option(parsing: .upToNextOption,
            help: "Access logs (plain or gzip, - for standard input) to decide with both snapshots: the traffic whose decision changes.")
    var logs: [String] = []

    @OptionGroup var reading: LogReadingOptions

    @Option(help: "Write a self-contained HTML page of the traffic changes (needs --logs).")
    var html: String?

    @Option(name: .customLong("fail-over"),
            help: ArgumentHelp("CI gate: exit 3 when more than PERCENT of the requests would be decided differently (needs --logs).", valueName: "PERCENT"))
    var failOver: Double?

    @Option(name: .customLong("fail-over-bytes"),
            help: ArgumentHelp("CI gate: exit 3 when more than PERCENT of the bytes would be decided differently (needs --logs).", valueName: "PERCENT"))
    var failOverBytes: Double?

    @Flag(inversion: .prefixedNo, help: "Progress on standard error while reading logs (default: when it is a terminal).")
    var progress: Bool?

    func validate() throws {
        for (name, value) in [("--fail-over", failOver), ("--fail-over-bytes", failOverBytes)] {
            guard let value else { continue }
            guard value.isFinite, value >= 0, value <= 100 else { throw ValidationError("\(name) \(value): a percentage from 0 to 100") }
            guard !logs.isEmpty else { throw ValidationError("\(name) needs --logs") }
        }
        if html != nil && logs.isEmpty { throw ValidationError("--html needs --logs") }
    }

    func run() throws {
        do {
            try compare()
        } catch let failure as CommandFailure {
            // "1" means "changed": errors get their own status.
            printError("Error: \(failure)")
            throw ExitCode(DiffCommand.errorExitCode)
        }
    }

    private func compare() throws {
        let before = try openSnapshot(old), after = try openSnapshot(new)
        let diff = SnapshotDiff(old: before, new: after)
        let traffic = logs.isEmpty ? nil : try decideLogs(before, after)
        if json {
            var document = jsonText(diff)
            if let traffic {
                // Insert the traffic member before the closing brace of the snapshot diff's object.
                if let close = document.lastIndex(of: "}") {
                    document.replaceSubrange(close..., with: ",\n \"traffic\": \(DecisionDiffRender.json(traffic))}\n")
                }
            }
            print(document, terminator: "")
        } else {
            print(text(diff), terminator: "")
            if let traffic { print(DecisionDiffRender.text(traffic, limit: limit), terminator: "") }
        }
        if let traffic, let html {
            let page = DecisionDiffRender.html(traffic, limit: limit, snapshotChanges: text(diff))
            do {
                try FileOutput.writeAtomically(Array(page.utf8), to: html)
            } catch {
                throw CommandFailure(description: "\(html): \(error)")
            }
        }
        if let traffic, failOver != nil || failOverBytes != nil {
            var exceeded: [String] = []
            if let failOver, traffic.changedRequestShare * 100 > failOver {
                exceeded.append("\(Formatting.percent(traffic.changedRequestShare, digits: 2)) of requests changed, over --fail-over \(failOver)%")
            }
            if let failOverBytes, traffic.changedByteShare * 100 > failOverBytes {
                exceeded.append("\(Formatting.percent(traffic.changedByteShare, digits: 2)) of bytes changed, over --fail-over-bytes \(failOverBytes)%")
            }
            guard exceeded.isEmpty else {
                printError("diff: " + exceeded.joined(separator: "; "))
                throw ExitCode(DiffCommand.failOverExitCode)
            }
            return
        }
        if !diff.isEmpty || (traffic?.changedRequests ?? 0) > 0 { throw ExitCode(1) }
    }

    /// Every log line decided by both snapshots.
    private func decideLogs(_ before: Snapshot, _ after: Snapshot) throws -> DecisionDiffReport {
        var parser = try reading.makeParser()
        let analyzer = DecisionDiffAnalyzer(old: before, new: after, options: try reading.analyzerOptions())
        let start = ContinuousClock.now
        var reporter = ProgressReporter(command: "diff", enabled: progress ?? (isatty(2) == 1), interactive: isatty(2) == 1, start: start)
        for path in logs {
            try analyzer.consume(try openLogInput(path), parser: &parser) { analyzer in
                reporter.update(input: path) { analyzer.statistics }
            }
        }
        reporter.finish()
        let report = analyzer.report(format: reading.format, elapsedSeconds: ProgressReporter.seconds(since: start))
        if report.statistics.records == 0 && report.statistics.malformedTotal > 0 {
            throw CommandFailure(description: "no line matched --format \(reading.format): \(report.statistics.malformedTotal) malformed lines")
        }
        return report
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
