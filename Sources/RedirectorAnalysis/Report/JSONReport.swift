import RedirectorCore

/// JSON output: the whole report, keys in a fixed order.
public enum JSONReport {
    /// Renders the report as a JSON document.
    public static func render(_ report: AnalysisReport, unmatchedLimit: Int = 100) -> String {
        let json = JSONWriter()
        json.object {
            json.field("snapshot") {
                json.object {
                    json.field("path", report.snapshotPath)
                    json.field("checksum", String(report.snapshotChecksum, radix: 16))
                }
            }
            json.field("format", report.format)
            json.field("asn_tables") { json.array(report.asnTables) { json.value($0) } }
            inputFields(json, inputs: report.inputs, statistics: report.statistics, examples: report.examples)
            json.field("total") { row(json, report.total) }
            json.field("providers") { json.array(report.providers) { row(json, $0) } }
            json.field("regions") { json.array(report.regions) { row(json, $0) } }
            json.field("asns") { json.array(report.asns) { row(json, $0) } }
            json.field("top_unmatched_asns") { json.array(report.unmatchedASNs(limit: unmatchedLimit)) { row(json, $0) } }
            json.field("hourly") {
                json.object {
                    json.field("series") { json.array(report.seriesNames) { json.value($0) } }
                    json.field("hours") {
                        json.array(report.hours) { hour in
                            json.object {
                                json.field("start", hour.start)
                                json.field("start_utc", Formatting.iso8601(hour.start))
                                json.field("bytes") { json.array(hour.bytes) { json.value($0) } }
                                json.field("redirected_bytes", hour.redirectedBytes)
                            }
                        }
                    }
                }
            }
            json.field("elapsed_seconds", report.elapsedSeconds)
            json.field("lines_per_second", report.linesPerSecond.rounded())
            json.field("memory_bytes", report.memoryBytes)
        }
        return json.text + "\n"
    }

    /// The `inputs`, `lines` and `malformed_examples` members every log report shares.
    static func inputFields(_ json: JSONWriter, inputs: [(name: String, lines: Int, warning: String?)],
                            statistics stats: InputStatistics, examples: [MalformedExample]) {
        json.field("inputs") {
            json.array(inputs) { input in
                json.object {
                    json.field("name", input.name)
                    json.field("lines", input.lines)
                    if let warning = input.warning { json.field("warning", warning) }
                }
            }
        }
        json.field("lines") {
            json.object {
                json.field("total", stats.lines)
                json.field("records", stats.records)
                json.field("skipped", stats.skipped)
                json.field("malformed", stats.malformedTotal)
                json.field("malformed_by_reason") {
                    json.object {
                        for reason in MalformedReason.allCases { json.field(reason.key, stats.malformed[reason.rawValue]) }
                    }
                }
                json.field("invalid_client_addresses", stats.invalidClientAddresses)
                json.field("missing_client_addresses", stats.missingClientAddresses)
                json.field("untimed_records", stats.untimedRecords)
                json.field("hours_dropped", stats.hoursDropped)
                json.field("input_bytes", Int(stats.inputBytes))
            }
        }
        json.field("malformed_examples") {
            json.array(examples) { example in
                json.object {
                    json.field("input", example.input)
                    json.field("line", example.line)
                    json.field("reason", example.reason.key)
                    json.field("text", example.text)
                }
            }
        }
    }

    private static func row(_ json: JSONWriter, _ row: TrafficRow) {
        let c = row.counters
        json.object {
            json.field("provider", row.provider)
            json.field("region", row.region)
            json.field("asn", Int(row.asn))
            json.field("requests", c.requests)
            json.field("bytes", c.bytes)
            json.field("distinct_clients", row.distinctClients)
            json.field("distinct_clients_exact", row.distinctClientsExact)
            for (outcome, requests, bytes) in [("redirected", c.redirectedRequests, c.redirectedBytes),
                                               ("answered", c.answeredRequests, c.answeredBytes),
                                               ("origin", c.originRequests, c.originBytes)] {
                json.field("\(outcome)_requests", requests)
                json.field("\(outcome)_bytes", bytes)
            }
            json.field("redirected_request_share", row.redirectedRequestShare)
            json.field("redirected_byte_share", row.redirectedByteShare)
        }
    }
}

/// A small streaming JSON writer (compact output, one key per field call); a class so nested
/// closures can write to it.
final class JSONWriter {
    private(set) var text = ""
    private var needsComma = [false]

    private func separator() {
        if needsComma[needsComma.count - 1] { text += "," }
        needsComma[needsComma.count - 1] = true
    }

    func object(_ body: () -> Void) {
        text += "{"
        needsComma.append(false)
        body()
        needsComma.removeLast()
        text += "}"
    }

    func array<T>(_ items: some Sequence<T>, _ body: (T) -> Void) {
        text += "["
        needsComma.append(false)
        for item in items {
            separator()
            needsComma.append(false)
            body(item)
            needsComma.removeLast()
        }
        needsComma.removeLast()
        text += "]"
    }

    private func key(_ name: String) {
        separator()
        text += JSONWriter.quoted(name) + ":"
    }

    func field(_ name: String, _ body: () -> Void) {
        key(name)
        needsComma.append(false)
        body()
        needsComma.removeLast()
    }

    func field(_ name: String, _ value: String) { key(name); text += JSONWriter.quoted(value) }
    func field(_ name: String, _ value: Int) { key(name); text += String(value) }
    func field(_ name: String, _ value: Int64) { key(name); text += String(value) }
    func field(_ name: String, _ value: UInt64) { key(name); text += String(value) }
    func field(_ name: String, _ value: Bool) { key(name); text += value ? "true" : "false" }
    func field(_ name: String, _ value: Double) { key(name); text += JSONWriter.number(value) }

    func value(_ value: String) { text += JSONWriter.quoted(value) }
    func value(_ value: UInt64) { text += String(value) }

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func quoted(_ string: String) -> String { TextEscaping.jsonString(string) }
}
