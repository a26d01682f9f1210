import RedirectorAnalysis
import Testing

private func parser(_ format: String, _ formatString: String? = nil) throws -> any LogParser {
    guard let plugin = LogFormats.format(named: format) else { throw LogFormatError("no format \(format)") }
    return try plugin.makeParser(options: LogFormatOptions(formatString: formatString))
}

@Suite struct NginxFormatTests {
    @Test func combinedLine() throws {
        var p = try parser("combined")
        let (outcome, fields) = parse(#"3.5.140.2 - frank [13/May/2024:00:00:00 +0000] "GET /v2/pause/manifests/3.9?x=1 HTTP/1.1" 200 1234 "-" "containerd/1.7""#, with: &p)
        #expect(outcome == .record)
        #expect(fields == ParsedFields(peer: "3.5.140.2", method: "GET", target: "/v2/pause/manifests/3.9?x=1", status: 200, bytes: 1234, time: 1_715_558_400))
    }

    @Test func combinedVariants() throws {
        var p = try parser("combined")
        // IPv6 client, HTTP/2, CRLF already stripped by the reader.
        var (outcome, fields) = parse(#"2600:1f18::1 - - [13/May/2024:00:00:00 +0000] "HEAD /v2/ HTTP/2.0" 200 0 "-" "-""#, with: &p)
        #expect(outcome == .record && fields.peer == "2600:1f18::1" && fields.method == "HEAD" && fields.target == "/v2/")
        // A request nginx could not parse is logged as "-" or as raw bytes: a request with no target.
        (outcome, fields) = parse(#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "-" 400 0 "-" "-""#, with: &p)
        #expect(outcome == .record && fields.method == "" && fields.target == "" && fields.status == 400)
        (outcome, fields) = parse(#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "\x16\x03\x01\x00" 400 157 "-" "-""#, with: &p)
        #expect(outcome == .record && fields.target == "" && fields.bytes == 157)
        // HTTP/0.9 style: no protocol, the rest is the target.
        (outcome, fields) = parse(#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET /index.html" 200 10 "-" "-""#, with: &p)
        #expect(outcome == .record && fields.target == "/index.html")
        // Escaped bytes in the target are decoded back (so control bytes still block a redirect).
        (outcome, fields) = parse(#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET /a\x22b\x0Ac HTTP/1.1" 200 10 "-" "-""#, with: &p)
        #expect(outcome == .record && fields.target == "/a\"b\nc")
        // A user agent with spaces and quotes does not matter: fields after the last one needed are not read.
        (outcome, fields) = parse(#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET / HTTP/1.1" 304 - "-" "a "quoted" agent" extra"#, with: &p)
        #expect(outcome == .record && fields.status == 304 && fields.bytes == 0)
    }

    @Test func combinedMalformedLines() throws {
        var p = try parser("combined")
        let cases: [(String, LineOutcome)] = [
            ("", .skip),
            ("garbage", .malformed(.layout)),
            (#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET / HTT"#, .malformed(.layout)),
            (#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET / HTTP/1.1" 2x0 1 "-" "-""#, .malformed(.status)),
            (#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET / HTTP/1.1" 1000 1 "-" "-""#, .malformed(.status)),
            (#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 -5 "-" "-""#, .malformed(.bytes)),
            (#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 99999999999999999999 "-" "-""#, .malformed(.bytes)),
            (#"1.2.3.4 - - [13/Foo/2024:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#, .malformed(.time)),
            (#"1.2.3.4 - - 13/May/2024:00:00:00 +0000 "GET / HTTP/1.1" 200 1 "-" "-""#, .malformed(.layout)),
        ]
        for (line, expected) in cases {
            #expect(parse(line, with: &p).0 == expected, "\(line)")
        }
    }

    @Test func randomBytesNeverCrash() throws {
        var generator = SeededGenerator(seed: 20_240_513)
        let base = Array(#"1.2.3.4 - - [13/May/2024:00:00:00 +0000] "GET /v2/x HTTP/1.1" 200 12 "-" "-""#.utf8)
        for format in ["combined", "envoy", "gcs"] {
            var p = try parser(format, format == "gcs" ? "time_micros,c_ip,cs_method,cs_uri,sc_status,sc_bytes" : nil)
            var record = LogRecord()
            for round in 0..<20_000 {
                var bytes = round % 2 == 0 ? base : []
                if bytes.isEmpty {
                    bytes = (0..<Int.random(in: 0...120, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                } else {
                    for _ in 0..<Int.random(in: 1...6, using: &generator) {
                        bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                    }
                    bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
                }
                _ = bytes.withUnsafeBytes { p.parse($0, into: &record) }
            }
        }
    }

    @Test func customLogFormat() throws {
        let format = #"$remote_addr "$http_x_forwarded_for" [$time_iso8601] $request_method $request_uri $status $bytes_sent $request_time"#
        var p = try parser("custom", format)
        let (outcome, fields) = parse(#"127.0.0.1 "203.0.113.9, 3.5.140.2" [2024-05-12T17:00:00-07:00] GET /v2/x?y 200 512 0.004"#, with: &p)
        #expect(outcome == .record)
        #expect(fields == ParsedFields(peer: "127.0.0.1", forwardedFor: "203.0.113.9, 3.5.140.2", method: "GET", target: "/v2/x?y",
                                       status: 200, bytes: 512, time: 1_715_558_400))
        // ${name} spelling, and $msec.
        var q = try parser("custom", #"${remote_addr}|$msec|$request|$status|$body_bytes_sent"#)
        let (second, other) = parse("1.2.3.4|1715558400.250|GET /a HTTP/1.1|200|7", with: &q)
        #expect(second == .record && other.time == 1_715_558_400 && other.bytes == 7 && other.target == "/a")
    }

    @Test func customLogFormatErrors() {
        #expect(throws: LogFormatError.self) { try parser("custom") }
        #expect(throws: LogFormatError.self) { try parser("custom", "$remote_addr$request") }
        #expect(throws: LogFormatError.self) { try parser("custom", "$status $request") }
        #expect(throws: LogFormatError.self) { try parser("custom", "$remote_addr $status") }
        #expect(throws: LogFormatError.self) { try parser("custom", "${remote_addr $request") }
    }
}

@Suite struct EnvoyFormatTests {
    @Test func defaultFormat() throws {
        var p = try parser("envoy")
        let line = #"[2024-05-13T00:00:00.123Z] "GET /v2/pause/blobs/sha256:abc HTTP/1.1" 200 - 0 4096 12 10 "198.51.100.1, 3.5.140.2" "containerd" "5f0b" "registry.example" "10.0.0.1:443""#
        let (outcome, fields) = parse(line, with: &p)
        #expect(outcome == .record)
        #expect(fields == ParsedFields(forwardedFor: "198.51.100.1, 3.5.140.2", method: "GET", target: "/v2/pause/blobs/sha256:abc",
                                       status: 200, bytes: 4096, time: 1_715_558_400))
        // Envoy writes "-" for absent values.
        let (second, dashes) = parse(#"[2024-05-13T00:00:00.123Z] "- - HTTP/1.1" 0 DC 0 - 1 - "-" "-" "-" "-" "-""#, with: &p)
        #expect(second == .record && dashes.method == "" && dashes.target == "" && dashes.status == 0 && dashes.bytes == 0 && dashes.forwardedFor == "")
    }

    @Test func customEnvoyFormat() throws {
        var p = try parser("envoy", "%START_TIME(%s)% %DOWNSTREAM_REMOTE_ADDRESS% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %BYTES_SENT%\n")
        var (outcome, fields) = parse("1715558400 [2600:1f18::1]:41234 GET /v2/x 200 9", with: &p)
        #expect(outcome == .record && fields.peer == "2600:1f18::1" && fields.time == 1_715_558_400 && fields.bytes == 9)
        (outcome, fields) = parse("1715558400 3.5.140.2:41234 GET /v2/x 200 9", with: &p)
        #expect(outcome == .record && fields.peer == "3.5.140.2")
    }

    @Test func malformed() throws {
        var p = try parser("envoy")
        #expect(parse("[2024-05-13T00:00:00.123Z] junk", with: &p).0 == .malformed(.layout))
        #expect(parse(#"[later] "GET / HTTP/1.1" 200 - 0 1 1 1 "1.2.3.4" "-" "-" "-" "-""#, with: &p).0 == .malformed(.time))
        #expect(parse(#"[2024-05-13T00:00:00.123Z] "GET / HTTP/1.1" OK - 0 1 1 1 "1.2.3.4" "-" "-" "-" "-""#, with: &p).0 == .malformed(.status))
    }
}

@Suite struct GCSFormatTests {
    static let header = #""time_micros","c_ip","c_ip_type","c_ip_region","cs_method","cs_uri","sc_status","cs_bytes","sc_bytes","time_taken_micros","cs_host","cs_referer","cs_user_agent","s_request_id","cs_operation","cs_bucket","cs_object""#

    @Test func usageLog() throws {
        var p = try parser("gcs")
        #expect(parse(#""1715558400000000","3.5.140.2","1","","GET","/b/o","200","0","12","1","h","","a","r","GET_Object","b","o""#, with: &p).0 == .malformed(.columns))
        #expect(parse(GCSFormatTests.header, with: &p).0 == .skip)
        let (outcome, fields) = parse(#""1715558400123456","2600:1f18::1","2","","GET","/bucket/a""b?alt=media","206","0","4096","1","storage.googleapis.com","","curl","r","GET_Object","bucket","a""b""#, with: &p)
        #expect(outcome == .record)
        #expect(fields == ParsedFields(peer: "2600:1f18::1", method: "GET", target: "/bucket/a\"b?alt=media", status: 206, bytes: 4096, time: 1_715_558_400))
    }

    @Test func headerRemapsColumns() throws {
        var p = try parser("gcs")
        #expect(parse(#""c_ip","cs_uri","sc_bytes","time_micros""#, with: &p).0 == .skip)
        let (outcome, fields) = parse(#""3.5.140.2","/x","77","1715558400000000""#, with: &p)
        #expect(outcome == .record && fields.peer == "3.5.140.2" && fields.bytes == 77 && fields.method == "" && fields.time == 1_715_558_400)
        // A header given on the command line, for input without one (unquoted CSV works too).
        var q = try parser("gcs", "time_micros,c_ip,cs_method,cs_uri,sc_status,sc_bytes")
        let (second, other) = parse("1715558400000000,1.2.3.4,HEAD,/v2/x,200,0", with: &q)
        #expect(second == .record && other.method == "HEAD" && other.target == "/v2/x")
    }

    @Test func malformed() throws {
        var p = try parser("gcs", "time_micros,c_ip,cs_method,cs_uri,sc_status,sc_bytes")
        #expect(parse(#""1715558400000000","1.2.3.4","GET","/unterminated"#, with: &p).0 == .malformed(.quoting))
        #expect(parse(#""1715558400000000","1.2.3.4""#, with: &p).0 == .malformed(.columns))
        #expect(parse(#""1715558400000000","1.2.3.4","GET","/x","abc","1""#, with: &p).0 == .malformed(.status))
        #expect(parse(#""1715558400000000","1.2.3.4","GET","/x","200","1.5""#, with: &p).0 == .malformed(.bytes))
        #expect(parse(#""soon","1.2.3.4","GET","/x","200","1""#, with: &p).0 == .malformed(.time))
        #expect(parse(#""1","1.2.3.4","GET","/x"junk,"200","1""#, with: &p).0 == .malformed(.quoting))
        #expect(throws: LogFormatError.self) { try parser("gcs", "a,b,c") }
    }
}
