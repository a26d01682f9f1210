import Foundation
import RedirectorAnalysis
import RedirectorCompiler
import RedirectorCore
import Testing

/// examples/simple with `edit` applied to its text, compiled in memory.
private func simpleVariant(_ edit: (String) -> String) throws -> Snapshot {
    let root = repositoryRoot.appendingPathComponent("examples").path
    let original = try String(contentsOfFile: root + "/simple/redirector.yaml", encoding: .utf8)
    let text = edit(original.replacingOccurrences(of: "../data/", with: root + "/data/"))
    let directory = TemporaryDirectory()
    let path = directory.write("redirector.yaml", text)
    return try Snapshot(bytes: try SnapshotCompiler(configPath: path).compile().encoded(), name: "variant")
}

/// The simple policy without its artifacts route and with 307 redirects.
private let changedSnapshot: Snapshot = {
    do {
        return try simpleVariant { text in
            var text = text.replacingOccurrences(of: "  status: 302", with: "  status: 307")
            if let start = text.range(of: "  - name: artifacts"), let end = text.range(of: "defaults:") {
                text.removeSubrange(start.lowerBound..<end.lowerBound)
            }
            return text
        }
    } catch {
        fatalError("cannot compile the changed policy: \(error)")
    }
}()

private func combined(_ client: String, _ method: String, _ target: String, _ bytes: Int, forwardedFor: String? = nil) -> String {
    var line = "\(client) - - [13/May/2024:00:10:00 +0000] \"\(method) \(target) HTTP/1.1\" 200 \(bytes) \"-\" \"test\""
    if let forwardedFor { line += " \"\(forwardedFor)\"" }
    return line
}

/// Runs `lines` through a diff analyzer; `name` is the input file's name.
private func diff(_ lines: [String], old: Snapshot = simpleSnapshot, new: Snapshot = changedSnapshot, format: String = "combined",
                  formatString: String? = nil, name: String = "input.log") throws -> DecisionDiffReport {
    let directory = TemporaryDirectory()
    let path = directory.write(name, lines.joined(separator: "\n") + "\n")
    let analyzer = DecisionDiffAnalyzer(old: old, new: new)
    var parser = try LogFormats.parser(named: format, formatString: formatString)
    try analyzer.consume(try LogInput(path: path), parser: &parser)
    return analyzer.report(format: format, elapsedSeconds: 1)
}

private let registry = "https://kubernetes.ecr.io", artifacts = "https://kubernetes.s3.amazon.com"

@Suite struct DecisionDiffTests {
    @Test func countsEachPairOnce() throws {
        let report = try diff([
            combined("3.5.140.2", "GET", "/v2/pause/manifests/3.9", 100),        // registry 302 → 307
            combined("3.5.140.3", "GET", "/v2/pause/blobs/sha256:aa", 300),      // registry 302 → 307
            combined("3.5.140.2", "GET", "/binaries/kubernetes/v1.30.0/kubectl", 1000),  // artifacts → pass
            combined("3.5.140.2", "POST", "/v2/pause/blobs/uploads/", 0),        // pass → pass
            combined("192.0.2.1", "GET", "/v2/pause/manifests/3.9", 7),          // no provider: pass → pass
            combined("999.1.1.1", "GET", "/v2/pause/manifests/3.9", 3),          // invalid client: pass → pass
            "not a log line",
        ])
        #expect(report.statistics.lines == 7 && report.statistics.records == 6 && report.statistics.malformedTotal == 1)
        #expect(report.statistics.invalidClientAddresses == 1)
        #expect(report.examples.first?.line == 7)
        #expect(report.requests == 6 && report.bytes == 1410)
        #expect(report.changes == [
            OutcomeChange(from: DecisionOutcome(action: .redirect, status: 302, target: artifacts), to: DecisionOutcome(action: .pass, status: 0),
                          requests: 1, bytes: 1000),
            OutcomeChange(from: DecisionOutcome(action: .redirect, status: 302, target: registry),
                          to: DecisionOutcome(action: .redirect, status: 307, target: registry), requests: 2, bytes: 400),
        ].sorted { $0.requests > $1.requests })
        #expect(report.unchanged == [OutcomeChange(from: DecisionOutcome(action: .pass, status: 0), to: DecisionOutcome(action: .pass, status: 0),
                                                   requests: 3, bytes: 10)])
        #expect(report.changedRequests == 3 && report.changedBytes == 1400)
        #expect(report.changedRequestShare == 0.5 && report.changedByteShare == 1400.0 / 1410.0)
    }

    @Test func identicalSnapshotsChangeNothing() throws {
        let report = try diff([combined("3.5.140.2", "GET", "/v2/a/manifests/1", 10), combined("34.80.0.1", "GET", "/releases/x", 20)],
                              new: simpleSnapshot)
        #expect(report.changes.isEmpty && report.changedRequestShare == 0)
        #expect(report.unchanged.map(\.requests).reduce(0, +) == 2 && report.unchanged.count == 2)
        #expect(report.unchanged.allSatisfy { $0.from == $0.to && $0.from.action == .redirect && $0.from.status == 302 })
    }

    @Test func respondStatusesAndLocationsCompare() throws {
        // The new policy answers GET /upload/ with 405 and rewrites registry redirects under /mirror.
        let changed = try simpleVariant { text in
            text.replacingOccurrences(of: "    redirect: { to: registry }", with: """
                    redirect: { to: registry, rewrite: "/mirror/v2/{rest}" }
                  - name: uploads
                    path: /upload/{rest...}
                    respond: { status: 405 }
                """)
        }
        let report = try diff([
            combined("3.5.140.2", "GET", "/v2/pause/manifests/3.9", 5),
            combined("3.5.140.2", "GET", "/upload/x", 2),   // routes default to GET and HEAD
            combined("3.5.140.2", "GET", "/binaries/kubectl", 9),
        ], new: changed)
        let rows = Dictionary(uniqueKeysWithValues: report.changes.map { ($0.to.label + ($0.locationChanged ? " moved" : ""), $0) })
        #expect(rows["respond 405"]?.from == DecisionOutcome(action: .pass, status: 0) && rows["respond 405"]?.bytes == 2)
        #expect(rows["redirect 302 \(registry) moved"]?.from.label == "redirect 302 \(registry)")
        #expect(report.changes.count == 2 && report.unchanged.count == 1 && report.unchanged[0].from.target == artifacts)
    }

    @Test func clientsResolvedWithEachSnapshotsTrustedProxies() throws {
        // The new policy trusts no proxy: the logged peer (loopback) is the client, of no provider.
        let untrusting = try simpleVariant { $0.replacingOccurrences(of: #"trustedProxies: [127.0.0.0/8, "::1/128"]"#, with: "") }
        let format = #"$remote_addr "$http_x_forwarded_for" "$request" $status $body_bytes_sent"#
        let report = try diff([#"127.0.0.1 "3.5.140.2" "GET /v2/a/manifests/1 HTTP/1.1" 200 10"#], new: untrusting,
                              format: "custom", formatString: format)
        #expect(report.changes.map(\.from.label) == ["redirect 302 \(registry)"] && report.changes.map(\.to.label) == ["pass"])
    }

    @Test func rendersTextJSONAndEscapedHTML() throws {
        let report = try diff([combined("3.5.140.2", "GET", "/v2/pause/manifests/3.9", 100), combined("192.0.2.1", "GET", "/", 50),
                               combined("3.5.140.2", "GET", "/releases/x", 10)],
                              name: "a<b>&\"c\".log")
        let text = DecisionDiffRender.text(report, limit: 1)
        #expect(text.contains("decision changes for 66.67% of requests (2)"))
        #expect(text.contains("redirect 302 \(registry)") && text.contains("... 1 more pairs"))

        let json = try #require(JSONSerialization.jsonObject(with: Data(DecisionDiffRender.json(report).utf8)) as? [String: Any])
        #expect(json["changed_requests"] as? Int == 2 && json["requests"] as? Int == 3 && json["bytes"] as? Int == 160)
        let changes = try #require(json["changes"] as? [[String: Any]])
        #expect(changes.count == 2 && (changes[0]["from"] as? [String: Any])?["action"] as? String == "redirect")
        #expect(Set(json.keys).isSuperset(of: ["old", "new", "inputs", "lines", "malformed_examples", "changed_request_share",
                                               "changed_byte_share", "unchanged"]))

        let html = DecisionDiffRender.html(report, limit: 10, snapshotChanges: "routes changed: <registry>")
        #expect(html.hasPrefix("<!doctype html>") && html.contains("<table id=\"changes\">"))
        #expect(html.contains("a&lt;b&gt;&amp;&quot;c&quot;.log") && !html.contains("a<b>"))
        #expect(html.contains("routes changed: &lt;registry&gt;"))
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("<script"))
    }
}
