/// The terminal summary.
public enum TextReport {
    /// Renders the summary: totals, providers, top regions, top unmatched ASNs, malformed lines.
    public static func render(_ report: AnalysisReport, topRegions: Int = 10, topASNs: Int = 10) -> String {
        typealias F = Formatting
        var lines: [String] = []
        let stats = report.statistics
        let inputNames = report.inputs.map(\.name)
        lines.append("redirector analyze: \(F.grouped(stats.lines)) lines (\(report.format)) from \(inputNames.count == 1 ? inputNames[0] : "\(inputNames.count) inputs") in \(F.fixed(report.elapsedSeconds, 2)) s (\(F.compact(report.linesPerSecond)) lines/s)")
        var malformed = "malformed \(F.grouped(stats.malformedTotal))"
        let reasons = MalformedReason.allCases.filter { stats.malformed[$0.rawValue] > 0 }
        if !reasons.isEmpty {
            malformed += " (" + reasons.map { "\($0.key) \(F.grouped(stats.malformed[$0.rawValue]))" }.joined(separator: ", ") + ")"
        }
        lines.append("  requests \(F.grouped(stats.records)) · \(malformed) · skipped \(F.grouped(stats.skipped))")
        var clients = "  distinct clients \(F.grouped(report.total.distinctClients))\(report.total.distinctClientsExact ? "" : " (estimate)")"
        if stats.invalidClientAddresses > 0 { clients += " · invalid client addresses \(F.grouped(stats.invalidClientAddresses))" }
        if stats.missingClientAddresses > 0 { clients += " · without client address \(F.grouped(stats.missingClientAddresses))" }
        lines.append(clients)
        let total = report.total
        lines.append("  would redirect \(F.percent(total.redirectedRequestShare)) of requests and \(F.percent(total.redirectedByteShare)) of bytes (\(F.bytes(total.counters.redirectedBytes)) of \(F.bytes(total.counters.bytes)))")
        for input in report.inputs where input.warning != nil {
            lines.append("  warning: \(input.warning ?? "")")
        }
        if stats.hoursDropped > 0 {
            lines.append("  warning: \(F.grouped(stats.hoursDropped)) requests fell beyond the time series' hour limit")
        }

        lines.append("")
        lines.append(F.left("provider", 16) + F.right("requests", 13) + F.right("share", 8) + F.right("clients", 11)
                     + F.right("bytes", 12) + F.right("redir req", 11) + F.right("redir bytes", 13) + F.right("answered", 10))
        for row in report.providers {
            lines.append(F.left(F.providerLabel(row.provider), 16)
                         + F.right(F.grouped(row.counters.requests), 13)
                         + F.right(F.percent(share(row.counters.requests, total.counters.requests)), 8)
                         + F.right(clientText(row), 11)
                         + F.right(F.bytes(row.counters.bytes), 12)
                         + F.right(F.percent(row.redirectedRequestShare), 11)
                         + F.right(F.percent(row.redirectedByteShare), 13)
                         + F.right(F.percent(share(row.counters.answeredRequests, row.counters.requests)), 10))
        }

        let regions = report.regions.filter { !$0.provider.isEmpty }.prefix(topRegions)
        if !regions.isEmpty {
            lines.append("")
            lines.append(F.left("top regions", 16) + F.left("", 22) + F.right("requests", 13) + F.right("clients", 11)
                         + F.right("bytes", 12) + F.right("redir bytes", 13))
            for row in regions {
                lines.append(F.left(row.provider, 16) + F.left(row.region.isEmpty ? "(no region)" : row.region, 22)
                             + F.right(F.grouped(row.counters.requests), 13) + F.right(clientText(row), 11)
                             + F.right(F.bytes(row.counters.bytes), 12) + F.right(F.percent(row.redirectedByteShare), 13))
            }
        }

        let unmatched = report.unmatchedASNs(limit: topASNs)
        lines.append("")
        if unmatched.isEmpty {
            lines.append("top unmatched ASNs: none (every client matched a provider)")
        } else {
            let unmatchedBytes = report.providers.first { $0.provider.isEmpty }?.counters.bytes ?? 0
            lines.append(F.left("top unmatched ASNs", 22) + F.right("requests", 13) + F.right("clients", 11)
                         + F.right("bytes", 12) + F.right("of unmatched", 14))
            for row in unmatched {
                lines.append(F.left(F.asnLabel(row.asn), 22) + F.right(F.grouped(row.counters.requests), 13)
                             + F.right(clientText(row), 11) + F.right(F.bytes(row.counters.bytes), 12)
                             + F.right(F.percent(share(row.counters.bytes, unmatchedBytes)), 14))
            }
            if report.asnTables.isEmpty && unmatched.allSatisfy({ $0.asn == 0 }) {
                lines.append("  (no ASN data for unmatched clients: pass --asn-table with a pyasn ipasn dump)")
            }
        }

        if !report.examples.isEmpty {
            lines.append("")
            lines.append("malformed lines (first \(report.examples.count)):")
            for example in report.examples {
                lines.append("  \(example.input):\(example.line): \(example.reason): \(example.text)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func share(_ part: UInt64, _ whole: UInt64) -> Double {
        whole == 0 ? 0 : Double(part) / Double(whole)
    }

    static func clientText(_ row: TrafficRow) -> String {
        (row.distinctClientsExact ? "" : "~") + Formatting.grouped(row.distinctClients)
    }
}

/// CSV output: one table of every row, with a `level` column (`total`, `provider`, `region`, `asn`),
/// and the hourly time series as a second table.
public enum CSVReport {
    /// The column names of ``render(_:)``.
    public static let header = [
        "level", "provider", "region", "asn", "requests", "bytes", "distinct_clients", "distinct_clients_exact",
        "redirected_requests", "redirected_bytes", "answered_requests", "answered_bytes", "origin_requests",
        "origin_bytes", "redirected_request_share", "redirected_byte_share",
    ]

    /// The rows table.
    public static func render(_ report: AnalysisReport) -> String {
        var out = header.joined(separator: ",") + "\n"
        func append(_ level: String, _ row: TrafficRow) {
            let c = row.counters
            let fields: [String] = [
                level, row.provider, row.region, row.asn == 0 ? "" : String(row.asn), String(c.requests), String(c.bytes),
                String(row.distinctClients), row.distinctClientsExact ? "true" : "false",
                String(c.redirectedRequests), String(c.redirectedBytes), String(c.answeredRequests), String(c.answeredBytes),
                String(c.originRequests), String(c.originBytes),
                Formatting.fixed(row.redirectedRequestShare, 6), Formatting.fixed(row.redirectedByteShare, 6),
            ]
            out += fields.map(escape).joined(separator: ",") + "\n"
        }
        append("total", report.total)
        for row in report.providers { append("provider", row) }
        for row in report.regions { append("region", row) }
        for row in report.asns { append("asn", row) }
        return out
    }

    /// The hourly table: `hour_utc,unix_seconds,<provider…>,no_provider,redirected_bytes` (bytes).
    public static func renderHourly(_ report: AnalysisReport) -> String {
        let names = report.seriesNames.map { $0.isEmpty ? "no_provider" : $0 }
        var out = (["hour_utc", "unix_seconds"] + names + ["redirected_bytes"]).map(escape).joined(separator: ",") + "\n"
        for hour in report.hours {
            out += ([Formatting.iso8601(hour.start), String(hour.start)] + hour.bytes.map { String($0) } + [String(hour.redirectedBytes)])
                .joined(separator: ",") + "\n"
        }
        return out
    }

    /// RFC 4180 quoting where needed.
    public static func escape(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingAll("\"", with: "\"\"") + "\""
    }
}

extension String {
    /// Every occurrence of `target` replaced.
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(count)
        for character in self {
            if character == target { out += replacement } else { out.append(character) }
        }
        return out
    }
}
