/// A self-contained HTML report: inline CSS and inline SVG charts, no scripts, no external resources.
public enum HTMLReport {
    /// Series colors; the last one is for clients of no provider.
    static let palette = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04", "#4f46e5",
                          "#65a30d", "#dc2626", "#0d9488", "#7c3aed"]
    static let noProviderColor = "#9ca3af"

    /// Renders the report.
    public static func render(_ report: AnalysisReport, title: String = "Redirector traffic analysis") -> String {
        typealias F = Formatting
        let stats = report.statistics
        let total = report.total
        var colors: [String: String] = [:]
        var index = 0
        for row in report.providers where !row.provider.isEmpty {
            colors[row.provider] = palette[index % palette.count]
            index += 1
        }
        colors[""] = noProviderColor
        func color(_ provider: String) -> String { colors[provider] ?? noProviderColor }

        var html = pageStart(title: title) + """
        <h1>\(escape(title))</h1>
        <div class="meta">snapshot <code>\(escape(report.snapshotPath))</code> (checksum \(String(report.snapshotChecksum, radix: 16))) ·
        format <code>\(escape(report.format))</code> · \(report.inputs.count) input\(report.inputs.count == 1 ? "" : "s"):
        \(report.inputs.prefix(8).map { "<code>\(escape($0.name))</code>" }.joined(separator: ", "))\(report.inputs.count > 8 ? " …" : "")
        \(report.asnTables.isEmpty ? "" : "· ASN data <code>\(escape(report.asnTables.joined(separator: ", ")))</code>")</div>

        """
        html += "<div class=\"cards\">"
        html += card("Requests", F.grouped(stats.records), "\(F.grouped(stats.lines)) lines read")
        html += card("Bytes sent", F.bytes(total.counters.bytes), "\(F.grouped(total.counters.bytes)) bytes")
        html += card("Distinct clients", (total.distinctClientsExact ? "" : "≈") + F.grouped(total.distinctClients),
                     total.distinctClientsExact ? "exact" : "HyperLogLog estimate")
        html += card("Would redirect", F.percent(total.redirectedByteShare),
                     "of bytes (\(F.bytes(total.counters.redirectedBytes))) · \(F.percent(total.redirectedRequestShare)) of requests")
        html += card("Malformed lines", F.grouped(stats.malformedTotal),
                     stats.lines == 0 ? "" : F.percent(Double(stats.malformedTotal) / Double(stats.lines), digits: 3) + " of lines")
        html += "</div>\n"
        for input in report.inputs {
            if let warning = input.warning { html += "<p class=\"note\">warning: \(escape(warning))</p>\n" }
        }

        // Share by provider.
        html += "<h2>Share by provider</h2>\n<div class=\"panel\">"
        html += legend([("redirected to the provider's mirror", "#374151", 1.0), ("answered by the redirector", "#374151", 0.55),
                        ("served by the origin", "#374151", 0.22)])
        html += shareChart(report.providers, total: total, color: color)
        html += "<p class=\"note\">Bar length: the provider's share of all bytes (left) and requests (right); shading splits each bar by what the snapshot's decision would do.</p></div>\n"

        // Bytes over time.
        html += "<h2>Bytes by provider over time</h2>\n<div class=\"panel\">"
        if report.hours.isEmpty {
            html += "<p class=\"note\">No timestamps in the input.</p>"
        } else {
            html += legend(report.seriesNames.map { (F.providerLabel($0), color($0), 1.0) } + [("would be redirected", "#111827", -1)])
            html += timeChart(report, color: color)
        }
        html += "</div>\n"

        // Top unmatched ASNs.
        let unmatched = report.unmatchedASNs(limit: 20)
        html += "<h2>Top unmatched ASNs</h2>\n<div class=\"panel\">"
        if unmatched.isEmpty {
            html += "<p class=\"note\">Every client matched a provider.</p>"
        } else {
            html += asnChart(unmatched)
            html += "<p class=\"note\">Networks whose clients match no provider, by bytes: the next candidates for a mirror.\(report.asnTables.isEmpty ? " ASNs come from the snapshot only; pass --asn-table for the rest." : "")</p>"
        }
        html += "</div>\n"

        // Tables.
        html += "<h2>Providers</h2>\n" + table(report.providers, total: total, showRegion: false, showASN: false, color: color)
        let regions = report.regions.filter { !$0.provider.isEmpty }
        html += "<h2>Regions</h2>\n" + table(Array(regions.prefix(40)), total: total, showRegion: true, showASN: false, color: color)
        if regions.count > 40 { html += "<p class=\"note\">\(regions.count - 40) more regions in the CSV/JSON output.</p>" }
        html += "<h2>Unmatched ASNs</h2>\n" + table(unmatched, total: total, showRegion: false, showASN: true, color: color)
        let matchedASNs = report.asns.filter { !$0.provider.isEmpty }.prefix(20)
        if !matchedASNs.isEmpty {
            html += "<h2>ASNs of matched clients</h2>\n" + table(Array(matchedASNs), total: total, showRegion: false, showASN: true, color: color)
        }

        html += inputTable(stats, examples: report.examples)
        html += "<p class=\"note\">Generated by <code>redirector analyze</code> in \(F.fixed(report.elapsedSeconds, 2)) s (\(F.compact(report.linesPerSecond)) lines/s). Each request was decided by the snapshot exactly as the NGINX module and sidecar would decide it.</p>\n"
        html += "</main></body></html>\n"
        return html
    }

    // MARK: - Pieces

    /// The page up to and including `<main>`: the document head with the inline stylesheet every
    /// report page shares.
    static func pageStart(title: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb;margin:0}
        main{max-width:1100px;margin:0 auto;padding:24px}
        h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px}
        .meta{color:#4b5563;font-size:13px}.meta code{font-size:12px}
        .cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:12px;margin:20px 0}
        .card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 14px}
        .card .k{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
        .card .v{font-size:22px;font-weight:600;margin-top:2px}.card .s{color:#6b7280;font-size:12px}
        .panel{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px;margin:12px 0}
        .note{color:#6b7280;font-size:12px;margin:6px 0 0}
        table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
        th,td{padding:6px 8px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
        th{background:#f3f4f6;font-weight:600}th:first-child,td:first-child,td.l,th.l{text-align:left}
        .sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
        .legend span{margin-right:14px;font-size:12px;color:#374151;white-space:nowrap}
        pre{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px;overflow-x:auto;font-size:12px}
        svg text{font-family:inherit}
        </style></head><body><main>

        """
    }

    /// The line statistics table and malformed examples every log report shows.
    static func inputTable(_ stats: InputStatistics, examples: [MalformedExample]) -> String {
        typealias F = Formatting
        var out = "<h2>Input</h2>\n<table><tr><th class=\"l\">lines</th><th>count</th></tr>"
        out += "<tr><td>read</td><td>\(F.grouped(stats.lines))</td></tr><tr><td>requests analyzed</td><td>\(F.grouped(stats.records))</td></tr>"
        out += "<tr><td>skipped (empty, comments, headers)</td><td>\(F.grouped(stats.skipped))</td></tr>"
        for reason in MalformedReason.allCases where stats.malformed[reason.rawValue] > 0 {
            out += "<tr><td>malformed: \(escape(reason.description))</td><td>\(F.grouped(stats.malformed[reason.rawValue]))</td></tr>"
        }
        out += "<tr><td>invalid client address (counted as unmatched)</td><td>\(F.grouped(stats.invalidClientAddresses))</td></tr>"
        out += "<tr><td>no client address (counted as unmatched)</td><td>\(F.grouped(stats.missingClientAddresses))</td></tr>"
        out += "<tr><td>without time (not in the time series)</td><td>\(F.grouped(stats.untimedRecords))</td></tr></table>\n"
        if !examples.isEmpty {
            out += "<pre>" + examples.map { "\(escape($0.input)):\($0.line): \(escape($0.reason.description)): \(escape($0.text))" }
                .joined(separator: "\n") + "</pre>\n"
        }
        return out
    }

    static func card(_ key: String, _ value: String, _ sub: String) -> String {
        "<div class=\"card\"><div class=\"k\">\(escape(key))</div><div class=\"v\">\(escape(value))</div><div class=\"s\">\(escape(sub))</div></div>"
    }

    /// A legend; opacity -1 draws a dashed line sample.
    static func legend(_ items: [(String, String, Double)]) -> String {
        var out = "<div class=\"legend\">"
        for (label, color, opacity) in items {
            if opacity < 0 {
                out += "<span><svg width=\"18\" height=\"10\" aria-hidden=\"true\"><line x1=\"0\" y1=\"5\" x2=\"18\" y2=\"5\" stroke=\"\(color)\" stroke-width=\"2\" stroke-dasharray=\"4 2\"/></svg> \(escape(label))</span>"
            } else {
                out += "<span><i class=\"sw\" style=\"background:\(color);opacity:\(Formatting.fixed(opacity, 2))\"></i>\(escape(label))</span>"
            }
        }
        return out + "</div>"
    }

    /// Two horizontal bar panels (bytes, requests); each bar split into redirected, answered and origin.
    static func shareChart(_ rows: [TrafficRow], total: TrafficRow, color: (String) -> String) -> String {
        let rowHeight = 26
        let labelWidth = 150.0
        let panelWidth = 420.0
        let gap = 40.0
        let width = labelWidth + 2 * panelWidth + gap
        let height = 24 + rows.count * rowHeight
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(height)\" width=\"100%\" role=\"img\" aria-label=\"share by provider\">"
        svg += "<text x=\"\(Int(labelWidth))\" y=\"14\" font-size=\"12\" fill=\"#6b7280\">share of bytes</text>"
        svg += "<text x=\"\(Int(labelWidth + panelWidth + gap))\" y=\"14\" font-size=\"12\" fill=\"#6b7280\">share of requests</text>"
        let maxBytes = Double(rows.map(\.counters.bytes).max() ?? 0)
        let maxRequests = Double(rows.map(\.counters.requests).max() ?? 0)
        for (index, row) in rows.enumerated() {
            let y = 22 + index * rowHeight
            let c = row.counters
            svg += "<text x=\"\(Int(labelWidth - 8))\" y=\"\(y + 15)\" font-size=\"13\" text-anchor=\"end\">\(escape(Formatting.providerLabel(row.provider)))</text>"
            for (panel, parts, whole, scale) in [
                (0, [c.redirectedBytes, c.answeredBytes, c.originBytes], total.counters.bytes, maxBytes),
                (1, [c.redirectedRequests, c.answeredRequests, c.originRequests], total.counters.requests, maxRequests),
            ] {
                let x0 = labelWidth + Double(panel) * (panelWidth + gap)
                let usable = panelWidth - 150
                var x = x0
                let sum = parts.reduce(0, &+)
                for (part, opacity) in zip(parts, [1.0, 0.55, 0.22]) where part > 0 {
                    let w = scale > 0 ? usable * Double(part) / scale : 0
                    let label = ["redirected", "answered", "origin"][[1.0, 0.55, 0.22].firstIndex(of: opacity) ?? 0]
                    svg += "<rect x=\"\(Formatting.fixed(x, 1))\" y=\"\(y + 2)\" width=\"\(Formatting.fixed(max(w, 0.5), 1))\" height=\"\(rowHeight - 8)\" fill=\"\(color(row.provider))\" fill-opacity=\"\(opacity)\"><title>\(escape(Formatting.providerLabel(row.provider))) \(label): \(panel == 0 ? Formatting.bytes(part) : Formatting.grouped(part) + " requests")</title></rect>"
                    x += w
                }
                let share = whole == 0 ? 0 : Double(sum) / Double(whole)
                let redirected = sum == 0 ? 0 : Double(parts[0]) / Double(sum)
                svg += "<text x=\"\(Formatting.fixed(x + 6, 1))\" y=\"\(y + 15)\" font-size=\"12\" fill=\"#374151\">\(Formatting.percent(share)) · \(Formatting.percent(redirected, digits: 0)) redir.</text>"
            }
        }
        return svg + "</svg>"
    }

    /// Stacked columns of bytes per provider per hour (per day when there are many hours), with a dashed
    /// line for the bytes that would be redirected.
    static func timeChart(_ report: AnalysisReport, color: (String) -> String) -> String {
        var buckets = report.hours
        var bucketSeconds: Int64 = 3600
        if let first = buckets.first?.start, let last = buckets.last?.start, (last - first) / 3600 + 1 > 24 * 45 {
            // Re-bin to days to keep the chart readable.
            var daily: [Int64: HourBucket] = [:]
            for hour in buckets {
                let day = hour.start - ((hour.start % 86_400) + 86_400) % 86_400
                var bucket = daily[day] ?? HourBucket(start: day, bytes: Array(repeating: 0, count: hour.bytes.count), redirectedBytes: 0)
                for index in hour.bytes.indices { bucket.bytes[index] &+= hour.bytes[index] }
                bucket.redirectedBytes &+= hour.redirectedBytes
                daily[day] = bucket
            }
            buckets = daily.values.sorted { $0.start < $1.start }
            bucketSeconds = 86_400
        }
        guard let first = buckets.first?.start, let last = buckets.last?.start else { return "" }
        let slots = Int((last - first) / bucketSeconds) + 1
        let width = 1000.0
        let height = 320.0
        let left = 78.0
        let right = 12.0
        let top = 12.0
        let bottom = 44.0
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let maximum = Double(buckets.map { $0.bytes.reduce(0, &+) }.max() ?? 0)
        let step = niceByteStep(maximum / 4)
        let ceiling = max(step * (maximum / step).rounded(.up), step)
        let columnWidth = plotWidth / Double(slots)
        func yOf(_ value: Double) -> Double { top + plotHeight - plotHeight * value / ceiling }

        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" role=\"img\" aria-label=\"bytes by provider over time\">"
        var tick = 0.0
        while tick <= ceiling + step / 2 {
            let y = yOf(tick)
            svg += "<line x1=\"\(Int(left))\" x2=\"\(Int(width - right))\" y1=\"\(Formatting.fixed(y, 1))\" y2=\"\(Formatting.fixed(y, 1))\" stroke=\"#e5e7eb\"/>"
            svg += "<text x=\"\(Int(left - 6))\" y=\"\(Formatting.fixed(y + 4, 1))\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7280\">\(Formatting.bytes(UInt64(tick)))</text>"
            tick += step
        }
        var redirectedPoints: [String] = []
        for bucket in buckets {
            let slot = Double((bucket.start - first) / bucketSeconds)
            let x = left + slot * columnWidth
            var base = 0.0
            for (index, value) in bucket.bytes.enumerated() where value > 0 {
                let name = index < report.seriesNames.count ? report.seriesNames[index] : ""
                let y0 = yOf(base)
                let y1 = yOf(base + Double(value))
                svg += "<rect x=\"\(Formatting.fixed(x, 2))\" y=\"\(Formatting.fixed(y1, 2))\" width=\"\(Formatting.fixed(max(columnWidth * 0.9, 0.6), 2))\" height=\"\(Formatting.fixed(max(y0 - y1, 0.3), 2))\" fill=\"\(color(name))\"><title>\(Formatting.utcMinute(bucket.start)) UTC · \(escape(Formatting.providerLabel(name))): \(Formatting.bytes(value))</title></rect>"
                base += Double(value)
            }
            redirectedPoints.append("\(Formatting.fixed(x + columnWidth * 0.45, 1)),\(Formatting.fixed(yOf(Double(bucket.redirectedBytes)), 1))")
        }
        if redirectedPoints.count > 1 {
            svg += "<polyline points=\"\(redirectedPoints.joined(separator: " "))\" fill=\"none\" stroke=\"#111827\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>"
        }
        // Time axis: about eight labels.
        let labelEvery = max(1, slots / 8)
        var slot = 0
        while slot < slots {
            let x = left + Double(slot) * columnWidth
            let start = first + Int64(slot) * bucketSeconds
            let text = bucketSeconds == 86_400 ? String(Formatting.utcMinute(start).prefix(10)) : Formatting.utcMinute(start)
            svg += "<line x1=\"\(Formatting.fixed(x, 1))\" x2=\"\(Formatting.fixed(x, 1))\" y1=\"\(Int(top + plotHeight))\" y2=\"\(Int(top + plotHeight + 5))\" stroke=\"#9ca3af\"/>"
            svg += "<text x=\"\(Formatting.fixed(x, 1))\" y=\"\(Int(top + plotHeight + 18))\" font-size=\"11\" fill=\"#6b7280\">\(text)</text>"
            slot += labelEvery
        }
        svg += "<line x1=\"\(Int(left))\" x2=\"\(Int(width - right))\" y1=\"\(Int(top + plotHeight))\" y2=\"\(Int(top + plotHeight))\" stroke=\"#6b7280\"/>"
        svg += "<text x=\"\(Int(width - right))\" y=\"\(Int(height - 6))\" font-size=\"11\" text-anchor=\"end\" fill=\"#6b7280\">\(bucketSeconds == 86_400 ? "days" : "hours"), UTC</text>"
        return svg + "</svg>"
    }

    /// Horizontal bars of bytes for the top unmatched ASNs.
    static func asnChart(_ rows: [TrafficRow]) -> String {
        let rowHeight = 24
        let labelWidth = 110.0
        let width = 1000.0
        let usable = width - labelWidth - 260
        let height = 8 + rows.count * rowHeight
        let maximum = Double(rows.map(\.counters.bytes).max() ?? 0)
        var svg = "<svg viewBox=\"0 0 \(Int(width)) \(height)\" width=\"100%\" role=\"img\" aria-label=\"top unmatched ASNs\">"
        for (index, row) in rows.enumerated() {
            let y = 4 + index * rowHeight
            let w = maximum > 0 ? usable * Double(row.counters.bytes) / maximum : 0
            svg += "<text x=\"\(Int(labelWidth - 8))\" y=\"\(y + 15)\" font-size=\"13\" text-anchor=\"end\">\(Formatting.asnLabel(row.asn))</text>"
            svg += "<rect x=\"\(Int(labelWidth))\" y=\"\(y + 3)\" width=\"\(Formatting.fixed(max(w, 0.5), 1))\" height=\"\(rowHeight - 8)\" fill=\"\(noProviderColor)\"><title>\(Formatting.asnLabel(row.asn)): \(Formatting.bytes(row.counters.bytes)), \(Formatting.grouped(row.counters.requests)) requests</title></rect>"
            svg += "<text x=\"\(Formatting.fixed(labelWidth + w + 6, 1))\" y=\"\(y + 15)\" font-size=\"12\" fill=\"#374151\">\(Formatting.bytes(row.counters.bytes)) · \(Formatting.grouped(row.counters.requests)) req · \((row.distinctClientsExact ? "" : "≈") + Formatting.grouped(row.distinctClients)) clients</text>"
        }
        return svg + "</svg>"
    }

    /// A table of rows.
    static func table(_ rows: [TrafficRow], total: TrafficRow, showRegion: Bool, showASN: Bool, color: (String) -> String) -> String {
        typealias F = Formatting
        var out = "<table><tr><th class=\"l\">provider</th>"
        if showRegion { out += "<th class=\"l\">region</th>" }
        if showASN { out += "<th class=\"l\">ASN</th>" }
        out += "<th>requests</th><th>share</th><th>clients</th><th>bytes</th><th>share</th><th>redirected req.</th><th>redirected bytes</th><th>answered req.</th></tr>"
        for row in rows {
            let c = row.counters
            out += "<tr><td><i class=\"sw\" style=\"background:\(color(row.provider))\"></i>\(escape(F.providerLabel(row.provider)))</td>"
            if showRegion { out += "<td class=\"l\">\(escape(row.region.isEmpty ? "(none)" : row.region))</td>" }
            if showASN { out += "<td class=\"l\">\(F.asnLabel(row.asn))</td>" }
            out += "<td>\(F.grouped(c.requests))</td><td>\(F.percent(TextReport.share(c.requests, total.counters.requests)))</td>"
            out += "<td>\(row.distinctClientsExact ? "" : "≈")\(F.grouped(row.distinctClients))</td>"
            out += "<td>\(F.bytes(c.bytes))</td><td>\(F.percent(TextReport.share(c.bytes, total.counters.bytes)))</td>"
            out += "<td>\(F.percent(row.redirectedRequestShare))</td><td>\(F.percent(row.redirectedByteShare))</td>"
            out += "<td>\(F.percent(TextReport.share(c.answeredRequests, c.requests)))</td></tr>"
        }
        return out + "</table>\n"
    }

    /// A step that is a round number in the binary unit it is shown in (e.g. 20 GiB), at least `value`.
    static func niceByteStep(_ value: Double) -> Double {
        var unit = 1.0
        while value / unit >= 1024 { unit *= 1024 }
        return niceStep(value / unit) * unit
    }

    /// 1, 2 or 5 × 10^k, at least `value`.
    static func niceStep(_ value: Double) -> Double {
        guard value > 0, value.isFinite else { return 1 }
        var magnitude = 1.0
        while magnitude * 10 <= value { magnitude *= 10 }
        while magnitude > value { magnitude /= 10 }
        for factor in [1.0, 2.0, 5.0, 10.0] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }

    /// Text for HTML and SVG content and attributes.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
