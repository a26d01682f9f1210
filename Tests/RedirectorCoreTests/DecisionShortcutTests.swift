@testable import RedirectorCore
import RedirectorTestSupport
import Testing

/// The decision path's shortcuts against what they stand in for: the one-pass path match against
/// the backtracking matcher, on seeded random patterns and paths; the word-at-a-time target scans
/// against byte loops; the object key's fingerprint on fixed vectors (a change would move every
/// object of every pool to another mirror).
@Suite struct DecisionShortcutTests {
    /// Random pattern texts: literals, and captures anywhere (so that both matchers are reached).
    static func randomPattern(_ random: inout SeededGenerator) -> String {
        let literals = ["/", "a", "b", "/v2/", ":", "x/"]
        var text = "/"
        var names = 0
        var hasRest = false
        for _ in 0..<Int.random(in: 0...4, using: &random) {
            if Bool.random(using: &random), names < 3 {
                let kind = Int.random(in: 0..<3, using: &random)
                if kind == 1 {
                    guard !hasRest else { continue }
                    hasRest = true
                }
                text += ["{c\(names)}", "{c\(names)...}", "{c\(names):digest}"][kind]
                names += 1
            } else {
                text += literals.randomElement(using: &random)!
            }
        }
        return text
    }

    /// Random paths over the patterns' alphabet, digests included.
    static func randomPath(_ random: inout SeededGenerator) -> String {
        let pieces = ["/", "a", "b", "v2", ":", "sha256:ab=", "x", "-", "sha256:", "/v2/"]
        var text = ""
        for _ in 0..<Int.random(in: 0...7, using: &random) { text += pieces.randomElement(using: &random)! }
        return text
    }

    @Test func onePassMatchAgreesWithBacktrackingOnRandomPatterns() throws {
        var random = SeededGenerator(seed: 0x7061_7468)
        var compared = 0, matched = 0, shortcut = 0
        for _ in 0..<3000 {
            var builder = StringTableBuilder()
            let text = DecisionShortcutTests.randomPattern(&random)
            let pattern = try PathPattern(parsing: text, strings: &builder)
            let tableBytes = builder.bytes
            try tableBytes.withUnsafeBytes { raw in
                let strings = try StringTable(bytes: raw)
                try pattern.parts.withUnsafeBufferPointer { parts in
                    let literalsFirst = parts.prefix { if case .literal = $0 { true } else { false } }.count
                    if literalsFirst >= parts.count - 1 { shortcut += 1 }
                    for _ in 0..<20 {
                        let path = Array(DecisionShortcutTests.randomPath(&random).utf8)
                        try path.withUnsafeBytes { path in
                            try withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: 2 * PathPattern.maximumCaptures) { both in
                                both.initialize(repeating: 0..<0)
                                let fast = UnsafeMutableBufferPointer(rebasing: both[..<PathPattern.maximumCaptures])
                                let slow = UnsafeMutableBufferPointer(rebasing: both[PathPattern.maximumCaptures...])
                                let fastMatched = PathPattern.match(parts, path, strings: strings, captures: fast)
                                let slowMatched = PathPattern.matchBacktracking(parts, path, strings: strings, captures: slow)
                                let context = "\(text) on \(String(decoding: path, as: UTF8.self))"
                                try #require(fastMatched == slowMatched, "\(context)")
                                if fastMatched {
                                    matched += 1
                                    for index in 0..<pattern.captureNames.count {
                                        try #require(fast[index] == slow[index], "\(context)")
                                    }
                                }
                                compared += 1
                            }
                        }
                    }
                }
            }
        }
        // The comparison covered both outcomes and both matchers.
        #expect(compared == 60_000)
        #expect(matched > 1_000 && matched < 59_000)
        #expect(shortcut > 300 && shortcut < 2_700)
    }

    @Test func theDigestAsLastPartAfterLiterals() throws {
        #expect(try PathPatternTests.match("/blobs/{d:digest}", "/blobs/sha256:abc") == ["sha256:abc"])
        #expect(try PathPatternTests.match("/blobs/{d:digest}", "/blobs/sha256:abc/") == nil)
        #expect(try PathPatternTests.match("/blobs/{d:digest}", "/blobs/sha256:") == nil)
        #expect(try PathPatternTests.match("/blobs/{d:digest}", "/blobs/:abc") == nil)
        #expect(try PathPatternTests.match("/blobs/{n}", "/blobs/") == nil)
        #expect(try PathPatternTests.match("/blobs/{r...}", "/blobs/") == [""])
    }

    /// Random targets of 0–40 bytes over the bytes the scans tell apart: `?`, `/`, the path-byte
    /// boundaries (0x20, 0x21, DEL, 0x7e, 0x80), NUL, 0xff and 0x01 (which follows a NUL's borrow).
    static func randomTarget(_ random: inout SeededGenerator) -> [UInt8] {
        let bytes: [UInt8] = [0x3f, 0x2f, 0x20, 0x21, 0x7f, 0x7e, 0x80, 0x00, 0xff, 0x01, 0x61, 0x3e, 0x40, 0x2e]
        var target = (0..<Int.random(in: 0...40, using: &random)).map { _ in
            Bool.random(using: &random) ? UInt8(ascii: "a") : bytes.randomElement(using: &random)!
        }
        if !target.isEmpty && Bool.random(using: &random) { target[0] = UInt8(ascii: "/") }
        return target
    }

    @Test func targetScanAgreesWithByteLoopsOnRandomTargets() throws {
        var random = SeededGenerator(seed: 0x7363_616e)
        var safe = 0, queries = 0
        for _ in 0..<20_000 {
            let target = DecisionShortcutTests.randomTarget(&random)
            try target.withUnsafeBytes { raw in
                let scan = OutputSyntax.scanRequestTarget(raw)
                let pathLength = target.firstIndex(of: UInt8(ascii: "?")) ?? target.count
                try #require(scan.pathLength == pathLength, "\(target)")
                try #require(scan.isSafe == OutputSyntax.isSafeRequestTarget(raw), "\(target)")
                for start in 0...target.count {
                    let slash = target[start...].firstIndex(of: UInt8(ascii: "/")) ?? target.count
                    try #require(WordScan.firstIndex(of: UInt8(ascii: "/"), in: raw, from: start) == slash, "\(target) from \(start)")
                }
                safe += scan.isSafe ? 1 : 0
                queries += pathLength < target.count ? 1 : 0
            }
        }
        // Both outcomes of both answers were compared.
        #expect(safe > 1_000 && safe < 19_000)
        #expect(queries > 1_000 && queries < 19_000)
    }

    /// Fixed values of the fingerprint for keys of every length class (shorter than a word, one
    /// word, a word and a tail, two words and a tail), computed by a separate Python rendering of
    /// the steps `ObjectKey.fingerprint` documents.
    @Test(arguments: [
        ("", 0xf7e2_7bed_97b0_321e as UInt64),
        ("a", 0x91bf_1c71_8ccc_999e),
        ("/pub/ob", 0x3a91_ae1e_a6a5_03f5),
        ("/pub/obj", 0x5c0d_b5ca_af7d_3adf),
        ("/pub/obje", 0x38c6_cd9a_aa1a_1d86),
        ("/pub/object-1.t", 0x1e6b_b37a_46e9_8ef3),
        ("/pub/object-1.ta", 0x039a_2d5d_fa02_78c6),
        ("/pub/object-1.tar", 0x7b9b_fd19_8d38_52a0),
    ])
    func fingerprintVectors(key: String, expected: UInt64) {
        let value = Array(key.utf8).withUnsafeBytes { ObjectKey.fingerprint($0) }
        #expect(value == expected, "\(key): 0x\(String(value, radix: 16))")
    }

    @Test func keysOfOneLengthThatDifferInTheirLastWordNeverCollide() {
        var random = SeededGenerator(seed: 0x6b65_7973)
        for length in [8, 16, 23, 40] {
            var seen = Set<UInt64>()
            let stem = (0..<length).map { _ in UInt8.random(in: 0x21...0x7e, using: &random) }
            for last in 0..<4096 {
                // The last two bytes lie in the last word only.
                var key = stem
                key[length - 2] = UInt8(truncatingIfNeeded: last)
                key[length - 1] = UInt8(truncatingIfNeeded: last >> 8)
                seen.insert(key.withUnsafeBytes { ObjectKey.fingerprint($0) })
            }
            #expect(seen.count == 4096, "length \(length)")
        }
    }
}
