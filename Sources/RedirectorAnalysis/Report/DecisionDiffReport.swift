import RedirectorCore

/// What a snapshot change does to logged traffic: the model `redirector diff --logs` renders as
/// text, JSON and HTML.
public struct DecisionDiffReport: Sendable {
    /// Path and checksum of the snapshot before.
    public var old: (path: String, checksum: UInt64)
    /// Path and checksum of the snapshot after.
    public var new: (path: String, checksum: UInt64)
    /// The log format name.
    public var format: String
    /// Inputs with their line counts and warnings.
    public var inputs: [(name: String, lines: Int, warning: String?)]
    /// Line statistics.
    public var statistics: InputStatistics
    /// Examples of malformed lines.
    public var examples: [MalformedExample]
    /// Pairs whose decision changes, by requests then bytes, descending.
    public var changes: [OutcomeChange]
    /// Pairs whose decision stays the same, by requests then bytes, descending.
    public var unchanged: [OutcomeChange]
    /// Seconds the run took.
    public var elapsedSeconds: Double

    /// Creates a report from its rows (in any order; they are sorted here).
    public init(old: (path: String, checksum: UInt64), new: (path: String, checksum: UInt64), format: String,
                inputs: [(name: String, lines: Int, warning: String?)], statistics: InputStatistics,
                examples: [MalformedExample], rows: [OutcomeChange], elapsedSeconds: Double) {
        self.old = old
        self.new = new
        self.format = format
        self.inputs = inputs
        self.statistics = statistics
        self.examples = examples
        let ordered = rows.sorted {
            if $0.requests != $1.requests { return $0.requests > $1.requests }
            if $0.bytes != $1.bytes { return $0.bytes > $1.bytes }
            if $0.from.label != $1.from.label { return $0.from.label < $1.from.label }
            if $0.to.label != $1.to.label { return $0.to.label < $1.to.label }
            return !$0.locationChanged && $1.locationChanged
        }
        changes = ordered.filter(\.isChange)
        unchanged = ordered.filter { !$0.isChange }
        self.elapsedSeconds = elapsedSeconds
    }

    /// Requests decided.
    public var requests: UInt64 { (changes + unchanged).reduce(0) { $0 &+ $1.requests } }
    /// Their logged bytes.
    public var bytes: UInt64 { (changes + unchanged).reduce(0) { $0 &+ $1.bytes } }
    /// Requests whose decision changes.
    public var changedRequests: UInt64 { changes.reduce(0) { $0 &+ $1.requests } }
    /// Bytes of those requests.
    public var changedBytes: UInt64 { changes.reduce(0) { $0 &+ $1.bytes } }
    /// Share of requests whose decision changes (0 without requests).
    public var changedRequestShare: Double { share(changedRequests, of: requests) }
    /// Share of bytes whose decision changes (0 without bytes).
    public var changedByteShare: Double { share(changedBytes, of: bytes) }

    /// Lines per second over the whole run.
    public var linesPerSecond: Double {
        elapsedSeconds > 0 ? Double(statistics.lines) / elapsedSeconds : 0
    }

    /// `part / whole`, 0 when `whole` is 0.
    public func share(_ part: UInt64, of whole: UInt64) -> Double {
        whole == 0 ? 0 : Double(part) / Double(whole)
    }

    /// The text of a row's new outcome, marking a changed `Location` with the same target.
    static func toLabel(_ row: OutcomeChange) -> String {
        row.locationChanged ? row.to.label + " (other Location)" : row.to.label
    }
}

extension DecisionDiffAnalyzer {
    /// The report of everything read so far.
    public func report(format: String, elapsedSeconds: Double) -> DecisionDiffReport {
        DecisionDiffReport(old: (old.path, old.checksum), new: (new.path, new.checksum), format: format, inputs: inputs,
                           statistics: statistics, examples: examples, rows: changes(), elapsedSeconds: elapsedSeconds)
    }
}

/// `redirector diff --logs` output: the terminal section, the JSON member and the HTML page.
public enum DecisionDiffRender {
    /// The terminal section: totals, then the top `limit` changed pairs.
    public static func text(_ report: DecisionDiffReport, limit: Int) -> String {
        typealias F = Formatting
        let stats = report.statistics
        var lines: [String] = []
        lines.append("traffic: \(F.grouped(stats.records)) requests from \(F.grouped(stats.lines)) lines (\(report.format), \(report.inputs.count) input\(report.inputs.count == 1 ? "" : "s")) in \(F.fixed(report.elapsedSeconds, 2)) s (\(F.compact(report.linesPerSecond)) lines/s); malformed \(F.grouped(stats.malformedTotal))")
        lines.append("  decision changes for \(F.percent(report.changedRequestShare, digits: 2)) of requests (\(F.grouped(report.changedRequests))) and \(F.percent(report.changedByteShare, digits: 2)) of bytes (\(F.bytes(report.changedBytes)) of \(F.bytes(report.bytes)))")
        for input in report.inputs where input.warning != nil {
            lines.append("  warning: \(input.warning ?? "")")
        }
        let shown = report.changes.prefix(max(limit, 0))
        if !shown.isEmpty {
            let fromWidth = max(24, shown.map { $0.from.label.count }.max() ?? 0) + 2
            let toWidth = max(24, shown.map { DecisionDiffReport.toLabel($0).count }.max() ?? 0) + 2
            lines.append("  " + F.left("from", fromWidth) + F.left("to", toWidth) + F.right("requests", 13) + F.right("share", 9)
                         + F.right("bytes", 12) + F.right("share", 9))
            for row in shown {
                lines.append("  " + F.left(row.from.label, fromWidth) + F.left(DecisionDiffReport.toLabel(row), toWidth)
                             + F.right(F.grouped(row.requests), 13)
                             + F.right(F.percent(report.share(row.requests, of: report.requests), digits: 2), 9)
                             + F.right(F.bytes(row.bytes), 12)
                             + F.right(F.percent(report.share(row.bytes, of: report.bytes), digits: 2), 9))
            }
            if report.changes.count > shown.count {
                lines.append("  ... \(report.changes.count - shown.count) more pairs (--limit, --json)")
            }
        }
        for example in report.examples.prefix(3) {
            lines.append("  malformed \(example.input):\(example.line): \(example.reason): \(example.text)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The JSON object (one line, keys in a fixed order): snapshots, inputs and line statistics as
    /// `analyze --json` has them, totals, shares, and every changed and unchanged pair.
    public static func json(_ report: DecisionDiffReport) -> String {
        let json = JSONWriter()
        func snapshot(_ name: String, _ value: (path: String, checksum: UInt64)) {
            json.field(name) {
                json.object {
                    json.field("path", value.path)
                    json.field("checksum", String(value.checksum, radix: 16))
                }
            }
        }
        func outcome(_ name: String, _ value: DecisionOutcome) {
            json.field(name) {
                json.object {
                    json.field("action", value.action.name)
                    json.field("status", Int(value.status))
                    json.field("target", value.target)
                }
            }
        }
        func rows(_ name: String, _ list: [OutcomeChange]) {
            json.field(name) {
                json.array(list) { row in
                    json.object {
                        outcome("from", row.from)
                        outcome("to", row.to)
                        json.field("location_changed", row.locationChanged)
                        json.field("requests", row.requests)
                        json.field("bytes", row.bytes)
                        json.field("request_share", report.share(row.requests, of: report.requests))
                        json.field("byte_share", report.share(row.bytes, of: report.bytes))
                    }
                }
            }
        }
        json.object {
            snapshot("old", report.old)
            snapshot("new", report.new)
            json.field("format", report.format)
            JSONReport.inputFields(json, inputs: report.inputs, statistics: report.statistics, examples: report.examples)
            json.field("requests", report.requests)
            json.field("bytes", report.bytes)
            json.field("changed_requests", report.changedRequests)
            json.field("changed_bytes", report.changedBytes)
            json.field("changed_request_share", report.changedRequestShare)
            json.field("changed_byte_share", report.changedByteShare)
            rows("changes", report.changes)
            rows("unchanged", report.unchanged)
            json.field("elapsed_seconds", report.elapsedSeconds)
            json.field("lines_per_second", report.linesPerSecond.rounded())
        }
        return json.text
    }

    /// A self-contained page (inline CSS, no scripts or external resources): totals, the top
    /// `limit` changed pairs with share bars, the unchanged pairs, and the input statistics.
    /// `snapshotChanges` is the snapshot diff's own summary, shown verbatim.
    public static func html(_ report: DecisionDiffReport, limit: Int, snapshotChanges: String,
                            title: String = "Redirector snapshot diff: traffic") -> String {
        typealias F = Formatting
        let escape = HTMLReport.escape
        let stats = report.statistics
        var html = HTMLReport.pageStart(title: title) + """
        <h1>\(escape(title))</h1>
        <div class="meta">old <code>\(escape(report.old.path))</code> (checksum \(String(report.old.checksum, radix: 16))) →
        new <code>\(escape(report.new.path))</code> (checksum \(String(report.new.checksum, radix: 16))) ·
        format <code>\(escape(report.format))</code> · \(report.inputs.count) input\(report.inputs.count == 1 ? "" : "s"):
        \(report.inputs.prefix(8).map { "<code>\(escape($0.name))</code>" }.joined(separator: ", "))\(report.inputs.count > 8 ? " …" : "")</div>

        """
        html += "<div class=\"cards\">"
        html += HTMLReport.card("Requests", F.grouped(stats.records), "\(F.grouped(stats.lines)) lines read")
        html += HTMLReport.card("Bytes sent", F.bytes(report.bytes), "\(F.grouped(report.bytes)) bytes")
        html += HTMLReport.card("Decision changes", F.percent(report.changedRequestShare, digits: 2),
                                "of requests (\(F.grouped(report.changedRequests)))")
        html += HTMLReport.card("Bytes affected", F.percent(report.changedByteShare, digits: 2),
                                "\(F.bytes(report.changedBytes)) of \(F.bytes(report.bytes))")
        html += HTMLReport.card("Malformed lines", F.grouped(stats.malformedTotal),
                                stats.lines == 0 ? "" : F.percent(Double(stats.malformedTotal) / Double(stats.lines), digits: 3) + " of lines")
        html += "</div>\n"
        for input in report.inputs {
            if let warning = input.warning { html += "<p class=\"note\">warning: \(escape(warning))</p>\n" }
        }
        func table(_ rows: ArraySlice<OutcomeChange>, id: String) -> String {
            var out = "<table id=\"\(id)\"><tr><th class=\"l\">from (old)</th><th class=\"l\">to (new)</th><th>requests</th><th>share</th>"
                + "<th>bytes</th><th>share</th><th class=\"l\">share of bytes</th></tr>"
            for row in rows {
                let byteShare = report.share(row.bytes, of: report.bytes)
                out += "<tr><td class=\"l\">\(escape(row.from.label))</td><td class=\"l\">\(escape(DecisionDiffReport.toLabel(row)))</td>"
                out += "<td>\(F.grouped(row.requests))</td><td>\(F.percent(report.share(row.requests, of: report.requests), digits: 2))</td>"
                out += "<td>\(F.bytes(row.bytes))</td><td>\(F.percent(byteShare, digits: 2))</td>"
                out += "<td class=\"l\"><i class=\"sw\" style=\"background:\(HTMLReport.palette[0]);width:\(F.fixed(max(byteShare * 200, 1), 1))px\"></i></td></tr>"
            }
            return out + "</table>\n"
        }
        html += "<h2>Decisions that change</h2>\n"
        if report.changes.isEmpty {
            html += "<div class=\"panel\"><p class=\"note\">No request would be decided differently.</p></div>\n"
        } else {
            html += table(report.changes.prefix(max(limit, 0)), id: "changes")
            if report.changes.count > max(limit, 0) {
                html += "<p class=\"note\">\(report.changes.count - max(limit, 0)) more pairs in the JSON output (--limit).</p>\n"
            }
        }
        html += "<p class=\"note\">A decision is its outcome: pass, respond with a status, or redirect with a status to a target base URL; "
            + "“other Location” marks the same target and status with a different Location (rewrite or query handling).</p>\n"
        html += "<h2>Decisions that stay</h2>\n" + table(report.unchanged.prefix(max(limit, 0)), id: "unchanged")
        html += "<h2>Snapshot changes</h2>\n<pre>\(escape(snapshotChanges))</pre>\n"
        html += HTMLReport.inputTable(stats, examples: report.examples)
        html += "<p class=\"note\">Generated by <code>redirector diff --logs</code> in \(F.fixed(report.elapsedSeconds, 2)) s (\(F.compact(report.linesPerSecond)) lines/s). Each request was decided by both snapshots exactly as the NGINX module and sidecar would decide it.</p>\n"
        html += "</main></body></html>\n"
        return html
    }
}
