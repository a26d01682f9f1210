import ArgumentParser
import Foundation
import RedirectorAnalysis
import RedirectorCore

/// `redirector analyze`: access logs through the decision engine → who the traffic comes from and
/// what the mirrors would take over.
struct AnalyzeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Stream access logs through the snapshot's decision and report traffic per provider, region and ASN.",
        discussion: """
        Every line is decided exactly as the NGINX module or sidecar would decide the request (client \
        address, method, target), and counted per provider, region and ASN: requests, distinct clients, \
        bytes, and the share that would be redirected, answered by the redirector, or served by the origin. \
        Inputs are plain or gzip files, or - for standard input; one pass, bounded memory.

        Formats:
        \(LogFormats.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n"))

        Client address: the peer field; from a trusted proxy (the snapshot's trustedProxies and \
        --trusted-proxy) the rightmost untrusted X-Forwarded-For entry, as nginx realip does. Envoy's \
        default format logs no peer: its rightmost X-Forwarded-For entry is used.
        """)

    @Option(name: .shortAndLong, help: "The snapshot (.rdb) deciding each request.")
    var snapshot: String

    @OptionGroup var reading: LogReadingOptions

    @Option(name: .customLong("asn-table"), help: "pyasn ipasn dump (plain or .gz) giving ASNs for clients the snapshot has none for. Repeatable.")
    var asnTables: [String] = []

    @Option(help: "Write the per-provider/region/ASN table as CSV (- for standard output).")
    var csv: String?

    @Option(name: .customLong("csv-hourly"), help: "Write bytes per provider per hour as CSV.")
    var csvHourly: String?

    @Option(help: "Write the whole report as JSON (- for standard output).")
    var json: String?

    @Option(help: "Write a self-contained HTML report with charts.")
    var html: String?

    @Option(name: .customLong("top"), help: "Rows of regions and unmatched ASNs in the terminal summary.")
    var top = 10

    @Flag(inversion: .prefixedNo, help: "Progress on standard error (default: when it is a terminal).")
    var progress: Bool?

    @Flag(name: .shortAndLong, help: "No terminal summary.")
    var quiet = false

    @Argument(help: "Log files (plain or gzip); - or nothing for standard input.")
    var files: [String] = []

    func run() throws {
        var parser = try reading.makeParser()
        let options = try reading.analyzerOptions()
        let format = reading.format
        let table = try openSnapshot(snapshot)
        var asnTable: ASNTable?
        if !asnTables.isEmpty {
            let start = ContinuousClock.now
            do {
                asnTable = try ASNTable(paths: asnTables)
            } catch {
                throw CommandFailure(description: "\(error)")
            }
            if let asnTable, showProgress {
                printError("loaded \(asnTable.prefixCounts.v4) IPv4 and \(asnTable.prefixCounts.v6) IPv6 ASN prefixes (\(asnTable.asnCount) ASNs) in \((ContinuousClock.now - start).milliseconds) ms")
            }
        }
        let analyzer = TrafficAnalyzer(snapshot: table, asnTable: asnTable, options: options)

        let start = ContinuousClock.now
        var reporter = ProgressReporter(command: "analyze", enabled: showProgress, interactive: isatty(2) == 1, start: start)
        for path in files.isEmpty ? ["-"] : files {
            try analyzer.consume(try openLogInput(path), parser: &parser) { analyzer in
                reporter.update(input: path) { analyzer.statistics }
            }
        }
        reporter.finish()
        let seconds = ProgressReporter.seconds(since: start)
        let report = analyzer.report(format: format, elapsedSeconds: seconds)

        var summaryToStandardError = false
        func write(_ text: String, to path: String?) throws {
            guard let path else { return }
            if path == "-" {
                FileOutput.write(text, to: 1)
                summaryToStandardError = true
            } else {
                try FileOutput.writeAtomically(Array(text.utf8), to: path)
            }
        }
        try write(CSVReport.render(report), to: csv)
        try write(CSVReport.renderHourly(report), to: csvHourly)
        try write(JSONReport.render(report), to: json)
        try write(HTMLReport.render(report), to: html)
        if !quiet {
            let summary = TextReport.render(report, topRegions: top, topASNs: top)
            FileOutput.write(summary, to: summaryToStandardError ? 2 : 1)
        }
        for (label, path) in [("CSV", csv), ("hourly CSV", csvHourly), ("JSON", json), ("HTML report", html)] {
            if let path, path != "-", !quiet { printError("wrote \(label) \(path)") }
        }
        if report.statistics.records == 0 && report.statistics.malformedTotal > 0 {
            throw CommandFailure(description: "no line matched --format \(format): \(report.statistics.malformedTotal) malformed lines")
        }
    }

    private var showProgress: Bool {
        progress ?? (isatty(2) == 1)
    }
}

/// Opens a log input (a file, or - for standard input) or fails with the reader's message.
func openLogInput(_ path: String) throws -> LogInput {
    do {
        return try LogInput(path: path)
    } catch {
        throw CommandFailure(description: "\(error)")
    }
}

/// Progress lines on standard error, at most one a second.
struct ProgressReporter {
    let command: String
    let enabled: Bool
    let interactive: Bool
    let start: ContinuousClock.Instant
    var last: ContinuousClock.Instant
    var printed = false

    init(command: String, enabled: Bool, interactive: Bool, start: ContinuousClock.Instant) {
        self.command = command
        self.enabled = enabled
        self.interactive = interactive
        self.start = start
        self.last = start
    }

    /// Prints `statistics()` when a second has passed since the last line.
    mutating func update(input: String, statistics: () -> InputStatistics) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard now - last >= .seconds(1) else { return }
        last = now
        let seconds = ProgressReporter.seconds(since: start)
        let stats = statistics()
        let rate = seconds > 0 ? Double(stats.lines) / seconds : 0
        let text = "\(command): \(Formatting.grouped(stats.lines)) lines, \(Formatting.bytes(UInt64(max(stats.inputBytes, 0)))) "
            + "(\(Formatting.compact(rate)) lines/s), \(Formatting.grouped(stats.malformedTotal)) malformed — \(input)"
        FileOutput.write(interactive ? "\r\u{1B}[K" + text : text + "\n", to: 2)
        printed = true
    }

    /// Seconds elapsed since `start`.
    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Clears the progress line.
    mutating func finish() {
        if enabled && interactive && printed { FileOutput.write("\r\u{1B}[K", to: 2) }
    }
}
