import RedirectorCore
import Testing

/// Path patterns: syntax, matching, captures, the digest rule and the step budget.
@Suite struct PathPatternTests {
    /// Parses `pattern`, matches `path` and returns the captured texts, or nil when it does not match.
    static func match(_ pattern: String, _ path: String) throws -> [String]? {
        var builder = StringTableBuilder()
        let parsed = try PathPattern(parsing: pattern, strings: &builder)
        let tableBytes = builder.bytes
        return try tableBytes.withUnsafeBytes { tableRaw in
            let table = try StringTable(bytes: tableRaw)
            var pathBytes = Array(path.utf8)
            return pathBytes.withUnsafeMutableBytes { pathRaw in
                withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: PathPattern.maximumCaptures) { captures in
                    captures.initialize(repeating: 0..<0)
                    guard parsed.match(UnsafeRawBufferPointer(pathRaw), strings: table, captures: captures) else { return nil }
                    return (0..<parsed.captureNames.count).map {
                        String(decoding: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(pathRaw)[captures[$0]]), as: UTF8.self)
                    }
                }
            }
        }
    }

    @Test func captureNamesAndParts() throws {
        var builder = StringTableBuilder()
        let pattern = try PathPattern(parsing: "/v2/{repo...}/blobs/{digest:digest}", strings: &builder)
        #expect(pattern.captureNames == ["repo", "digest"])
        #expect(pattern.parts.count == 4)
        #expect(pattern.parts[1] == .rest && pattern.parts[3] == .digest)
        let segment = try PathPattern(parsing: "/files/{name}/x", strings: &builder)
        #expect(segment.parts[1] == .segment)
        #expect(segment.captureNames == ["name"])
        let literal = try PathPattern(parsing: "/", strings: &builder)
        #expect(literal.captureNames.isEmpty && literal.parts.count == 1)
    }

    @Test(arguments: [
        // Literals match whole paths only.
        ("/", "/", [] as [String]?), ("/", "", nil), ("/", "//", nil), ("/v2", "/v2", []), ("/v2", "/v2/", nil),
        ("/v2/", "/v2/", []), ("/v2/_catalog", "/v2/_catalog", []), ("/v2/_catalog", "/V2/_catalog", nil),
        // Rest captures: zero or more bytes of anything.
        ("/v2/{rest...}", "/v2/", [""]), ("/v2/{rest...}", "/v2/a/b/c", ["a/b/c"]), ("/v2/{rest...}", "/v2", nil),
        ("/privacy{rest...}", "/privacy", [""]), ("/privacy{rest...}", "/privacy-policy/x", ["-policy/x"]),
        ("/{any...}", "/", [""]), ("/{any...}", "/%0d%0a", ["%0d%0a"]),
        // Segment captures: one or more non-'/' bytes.
        ("/files/{name}", "/files/a.tgz", ["a.tgz"]), ("/files/{name}", "/files/", nil), ("/files/{name}", "/files/a/b", nil),
        ("/{a}/{b}", "/x/y", ["x", "y"]), ("/{a}-{b}", "/x-y-z", ["x-y", "z"]),  // longest first
        ("/{a}.tar.gz", "/k8s.tar.gz", ["k8s"]),
        // Digests: [^/]+:[A-Za-z0-9=_-]+
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/pause/blobs/sha256:abc123", ["pause", "sha256:abc123"]),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/a/b/c/blobs/sha256:ABC=_-9", ["a/b/c", "sha256:ABC=_-9"]),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2//blobs/sha256:abc", ["", "sha256:abc"]),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/a:b:c", ["x", "a:b:c"]),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/sha256:", nil),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/:abc", nil),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/sha256abc", nil),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/sha256:ab.c", nil),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/sha256:ab%2f", nil),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/sha256:abc/", nil),
        ("/v2/{repo...}/blobs/{d:digest}", "/v2/x/blobs/uploads/", nil),
        // Bytes are compared exactly, including non-ASCII.
        ("/ü/{x}", "/ü/é", ["é"]), ("/ü/{x}", "/u/é", nil),
    ] as [(String, String, [String]?)])
    func matching(pattern: String, path: String, expected: [String]?) throws {
        #expect(try PathPatternTests.match(pattern, path) == expected)
    }

    @Test(arguments: [
        ("v2/{rest...}", "must start with '/'"), ("", "must start with '/'"),
        ("/v2/{rest", "unclosed '{'"), ("/{}", "invalid capture '{}'"), ("/{...}", "invalid capture '{...}'"),
        ("/{:digest}", "invalid capture '{:digest}'"), ("/{a-b}", "invalid capture '{a-b}'"), ("/{a b}", "invalid capture '{a b}'"),
        ("/{a:b}", "invalid capture '{a:b}'"), ("/{a{b}", "invalid capture '{a{b}'"),
        ("/{a}/{a}", "captures 'a' twice"), ("/{a}/{a...}", "captures 'a' twice"),
        ("/{a...}/{b...}", "more than one"), ("/x}", "'}' without '{'"), ("/{a}}", "'}' without '{'"),
        ("/{a}{b}{c}{d}{e}{f}{g}{h}{i}", "more than 8 captures"),
    ])
    func syntaxErrors(pattern: String, fragment: String) {
        var builder = StringTableBuilder()
        #expect {
            _ = try PathPattern(parsing: pattern, strings: &builder)
        } throws: { error in
            let text = "\(error)"
            return error is PathPattern.SyntaxError && text.contains(fragment) && text.contains("'\(pattern)'")
        }
    }

    @Test func eightCapturesAreAllowed() throws {
        #expect(try PathPatternTests.match("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h...}", "/1/2/3/4/5/6/7/8/9")
                == ["1", "2", "3", "4", "5", "6", "7", "8/9"])
    }

    @Test func hostilePathsAreBoundedAndNeverMatchWrongly() throws {
        // Adjacent captures over one long segment would take astronomically long with naive
        // backtracking; the step budget makes matching give up (no match) quickly.
        let long = "/" + String(repeating: "a", count: 20_000) + "b"
        let start = ContinuousClock.now
        #expect(try PathPatternTests.match("/{a}{b}{c}{d}{e}{f}{g}x", long) == nil)
        #expect(try PathPatternTests.match("/{a...}x{b}y{c}z{d}", long) == nil)
        #expect(ContinuousClock.now - start < .seconds(5))
        // An ordinary long path still matches within the budget.
        let path = "/v2/" + String(repeating: "x/", count: 5000) + "blobs/sha256:" + String(repeating: "f", count: 64)
        #expect(try PathPatternTests.match("/v2/{repo...}/blobs/{d:digest}", path)?.last == "sha256:" + String(repeating: "f", count: 64))
    }
}
