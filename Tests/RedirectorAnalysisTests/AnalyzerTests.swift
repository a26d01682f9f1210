import Foundation
import RedirectorAnalysis
import RedirectorCompiler
import RedirectorCore
import Testing

private func combined(_ client: String, _ method: String, _ target: String, _ status: Int, _ bytes: Int,
                      time: String = "13/May/2024:00:10:00 +0000") -> String {
    "\(client) - - [\(time)] \"\(method) \(target) HTTP/1.1\" \(status) \(bytes) \"-\" \"test\""
}

private func row(_ rows: [TrafficRow], _ provider: String) -> TrafficRow? {
    rows.first { $0.provider == provider }
}

@Suite struct AnalyzerTests {
    @Test func decidesAndCountsEachLine() throws {
        let report = try analyze([
            combined("3.5.140.2", "GET", "/v2/pause/manifests/3.9", 200, 100),
            combined("3.5.140.2", "POST", "/v2/pause/blobs/uploads/", 202, 0),
            combined("34.80.0.1", "GET", "/binaries/kubernetes/v1.30.0/kubectl", 200, 1000),
            combined("34.80.0.2", "GET", "/docs/index.html", 200, 50),
            combined("192.0.2.1", "GET", "/v2/pause/manifests/3.9", 200, 7),
            combined("999.1.1.1", "GET", "/v2/pause/manifests/3.9", 200, 3),
            "not a log line",
        ])
        #expect(report.statistics.lines == 7 && report.statistics.records == 6 && report.statistics.malformedTotal == 1)
        #expect(report.statistics.invalidClientAddresses == 1)
        let amazon = try #require(row(report.providers, "amazon"))
        #expect(amazon.counters.requests == 2 && amazon.counters.bytes == 100)
        #expect(amazon.counters.redirectedRequests == 1 && amazon.counters.redirectedBytes == 100)
        #expect(amazon.distinctClients == 1 && amazon.distinctClientsExact)
        let google = try #require(row(report.providers, "google"))
        #expect(google.counters.requests == 2 && google.counters.bytes == 1050 && google.counters.redirectedBytes == 1000)
        #expect(google.distinctClients == 2)
        let none = try #require(row(report.providers, ""))
        #expect(none.counters.requests == 2 && none.counters.bytes == 10 && none.counters.redirectedRequests == 0)
        #expect(none.distinctClients == 1)
        #expect(report.total.counters.redirectedBytes == 1100 && report.total.counters.requests == 6)
        #expect(report.regions.contains { $0.provider == "amazon" && $0.region == "ap-northeast-2" && $0.counters.requests == 2 })
        #expect(report.examples.first?.line == 7 && report.examples.first?.reason == .layout)
        // Every decision matches `explain`, the CLI's decide.
        for (client, method, target) in [("3.5.140.2", "GET", "/v2/pause/manifests/3.9"), ("34.80.0.2", "GET", "/docs/index.html")] {
            let explanation = simpleSnapshot.explain(client: client, method: method, target: target)
            #expect(explanation.action == (target.hasPrefix("/v2/") ? "redirect" : "pass"))
        }
    }

    @Test func forwardedForFromTrustedProxiesOnly() throws {
        let format = #"$remote_addr "$http_x_forwarded_for" "$request" $status $body_bytes_sent"#
        let lines = [
            #"127.0.0.1 "192.0.2.9, 3.5.140.2" "GET /v2/a/manifests/1 HTTP/1.1" 200 10"#,   // trusted peer: rightmost untrusted
            #"127.0.0.1 "3.5.140.2, 127.0.0.5" "GET /v2/a/manifests/1 HTTP/1.1" 200 10"#,   // skips a trusted hop
            #"192.0.2.50 "3.5.140.2" "GET /v2/a/manifests/1 HTTP/1.1" 200 10"#,             // untrusted peer: XFF ignored
            #"127.0.0.1 "garbage, 127.0.0.2" "GET /v2/a/manifests/1 HTTP/1.1" 200 10"#,     // garbage stops the walk
            #"127.0.0.1 "-" "GET /v2/a/manifests/1 HTTP/1.1" 200 10"#,                      // no header: the peer
        ]
        let report = try analyze(lines, format: "custom", formatString: format)
        #expect(row(report.providers, "amazon")?.counters.requests == 2)
        #expect(row(report.providers, "")?.counters.requests == 3)
        let trusting = try analyze(lines, format: "custom", formatString: format,
                                   options: AnalyzerOptions(trustedProxies: [try #require(IPPrefix("192.0.2.50/32"))]))
        #expect(row(trusting.providers, "amazon")?.counters.requests == 3)
    }

    @Test func envoyDefaultUsesTheRightmostForwardedFor() throws {
        let lines = [
            #"[2024-05-13T00:00:00.000Z] "GET /v2/a/manifests/1 HTTP/1.1" 200 - 0 10 1 1 "192.0.2.1, 3.5.140.2" "-" "-" "-" "-""#,
            #"[2024-05-13T00:00:00.000Z] "GET /v2/a/manifests/1 HTTP/1.1" 200 - 0 10 1 1 "3.5.140.2, 192.0.2.1" "-" "-" "-" "-""#,
            #"[2024-05-13T00:00:00.000Z] "GET /v2/a/manifests/1 HTTP/1.1" 200 - 0 10 1 1 "-" "-" "-" "-" "-""#,
        ]
        let report = try analyze(lines, format: "envoy")
        #expect(row(report.providers, "amazon")?.counters.redirectedRequests == 1)
        #expect(row(report.providers, "")?.counters.requests == 2)
        #expect(report.statistics.missingClientAddresses == 1)
    }

    @Test func asnTableFillsMissingASNs() throws {
        let directory = TemporaryDirectory()
        let path = directory.write("asn.dat.gz", "; test table\n192.0.2.0/24\t64500\n192.0.2.128/25\t64501\n34.80.0.0/16\t15169\n2001:db8::/32\t64502\n", gzip: true)
        let table = try ASNTable(paths: [path])
        #expect(table.prefixCounts.v4 == 3 && table.prefixCounts.v6 == 1 && table.asnCount == 4)
        #expect(table.asn(of: try #require(IPAddress("192.0.2.200"))) == 64501)
        #expect(table.asn(of: try #require(IPAddress("::ffff:192.0.2.1"))) == 64500)
        #expect(table.asn(of: try #require(IPAddress("2001:db8::1"))) == 64502)
        #expect(table.asn(of: try #require(IPAddress("198.51.100.1"))) == 0)
        let report = try analyze([
            combined("192.0.2.1", "GET", "/v2/x/manifests/1", 200, 5),
            combined("192.0.2.2", "GET", "/v2/x/manifests/1", 200, 5),
            combined("192.0.2.200", "GET", "/v2/x/manifests/1", 200, 50),
            combined("34.80.0.1", "GET", "/v2/x/manifests/1", 200, 1),
        ], asnTable: table)
        let unmatched = report.unmatchedASNs()
        #expect(unmatched.map(\.asn) == [64501, 64500])
        #expect(unmatched.last?.counters.requests == 2 && unmatched.last?.distinctClients == 2)
        #expect(report.asns.contains { $0.provider == "google" && $0.asn == 15169 })
        let bad = directory.write("bad.dat", "192.0.2.0/24 sixty\n")
        #expect(throws: ASNTableError.self) { try ASNTable(paths: [bad]) }
    }

    @Test func stripsAPathPrefix() throws {
        let lines = [
            combined("3.5.140.2", "GET", "/bucket/v2/a/manifests/1", 200, 10),
            combined("3.5.140.2", "GET", "/bucketx/v2/a/manifests/1", 200, 10),
        ]
        let plain = try analyze(lines)
        #expect(plain.total.counters.redirectedRequests == 0)
        let stripped = try analyze(lines, options: AnalyzerOptions(stripPathPrefix: "/bucket/"))
        #expect(stripped.total.counters.redirectedRequests == 1)
    }

    @Test func hourlySeriesPerProvider() throws {
        let report = try analyze([
            combined("3.5.140.2", "GET", "/v2/a/blobs/sha256:1", 200, 100, time: "13/May/2024:00:59:59 +0000"),
            combined("34.80.0.1", "GET", "/v2/a/blobs/sha256:1", 200, 30, time: "13/May/2024:01:00:00 +0000"),
            combined("192.0.2.1", "GET", "/", 200, 5, time: "13/May/2024:03:30:00 +0200"),
            combined("3.5.140.2", "GET", "/", 200, 1, time: "-"),
        ])
        #expect(report.seriesNames == ["amazon", "google", ""])
        #expect(report.hours.map(\.start) == [1_715_558_400, 1_715_562_000])
        #expect(report.hours[0].bytes == [101 - 1, 0, 0] && report.hours[0].redirectedBytes == 100)
        #expect(report.hours[1].bytes == [0, 30, 5])
        #expect(report.statistics.untimedRecords == 1)
    }

    @Test func answeredRequestsUnderTheRegistryPolicy() throws {
        let contents = try SnapshotCompiler(configPath: repositoryRoot.appendingPathComponent("examples/registry.k8s.io/redirector.yaml").path).compile()
        let snapshot = try Snapshot(bytes: contents.encoded(), name: "registry.k8s.io")
        let report = try analyze([
            combined("3.5.140.2", "POST", "/v2/a/blobs/uploads/", 405, 0),
            combined("3.5.140.2", "GET", "/v2/", 200, 2),
            combined("3.5.140.2", "GET", "/v2/pause/blobs/sha256:" + String(repeating: "a", count: 64), 200, 1000),
            combined("192.0.2.1", "GET", "/v2/pause/manifests/3.9", 200, 10),
        ], snapshot: snapshot)
        let aws = try #require(row(report.providers, "aws"))
        #expect(aws.counters.answeredRequests == 2 && aws.counters.redirectedRequests == 1 && aws.counters.redirectedBytes == 1000)
        // registry.k8s.io redirects everyone's /v2/ requests upstream, matched or not.
        #expect(row(report.providers, "")?.counters.redirectedRequests == 1)
    }
}

@Suite struct ReportTests {
    func sample() throws -> AnalysisReport {
        try analyze([
            combined("3.5.140.2", "GET", "/v2/pause/manifests/3.9", 200, 100),
            combined("34.80.0.1", "GET", "/binaries/<script>", 200, 1000, time: "13/May/2024:05:00:00 +0000"),
            combined("192.0.2.1", "GET", "/", 200, 7),
            "bad \u{1}line",
        ])
    }

    @Test func jsonIsValidAndComplete() throws {
        let text = JSONReport.render(try sample())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let lines = try #require(object["lines"] as? [String: Any])
        #expect(lines["total"] as? Int == 4 && lines["records"] as? Int == 3 && lines["malformed"] as? Int == 1)
        let providers = try #require(object["providers"] as? [[String: Any]])
        #expect(providers.count == 3)
        let hourly = try #require(object["hourly"] as? [String: Any])
        #expect((hourly["hours"] as? [Any])?.count == 2)
        let examples = try #require(object["malformed_examples"] as? [[String: Any]])
        #expect(examples.first?["text"] as? String == "bad \\x01line")
    }

    @Test func csvHasOneRowPerGroup() throws {
        let report = try sample()
        let rows = CSVReport.render(report).split(separator: "\n")
        #expect(rows.first == Substring(CSVReport.header.joined(separator: ",")))
        #expect(rows.count == 1 + 1 + report.providers.count + report.regions.count + report.asns.count)
        #expect(rows.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == CSVReport.header.count })
        #expect(CSVReport.escape("a,\"b\"") == "\"a,\"\"b\"\"\"")
        let hourly = CSVReport.renderHourly(report).split(separator: "\n")
        #expect(hourly.first == "hour_utc,unix_seconds,google,amazon,no_provider,redirected_bytes")
        #expect(hourly.count == 3)
    }

    @Test func htmlIsSelfContained() throws {
        let html = HTMLReport.render(try sample())
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(html.components(separatedBy: "<svg viewBox").count - 1 == 3)
        for forbidden in ["<script", "src=", "href=", "url(", "@import", "<link"] {
            #expect(!html.contains(forbidden), "\(forbidden)")
        }
        #expect(!html.contains("<script>"))
        #expect(html.contains("Share by provider") && html.contains("Bytes by provider over time") && html.contains("Top unmatched ASNs"))
    }

    @Test func terminalSummary() throws {
        let text = TextReport.render(try sample())
        #expect(text.contains("requests 3") && text.contains("malformed 1 (layout 1)"))
        #expect(text.contains("(no provider)") && text.contains("amazon") && text.contains("google"))
    }
}
