import Foundation
import RedirectorCore
import Testing

/// The security byte classes and escapes (Syntax/), tested once here for every byte, against
/// definitions written independently from the RFCs' character lists.
@Suite struct SyntaxTests {
    static let allBytes = (0...255).map { UInt8($0) }
    static let digits = Set("0123456789".utf8)
    static let letters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    /// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    static let tchar = Set("!#$%&'*+-.^_`|~".utf8).union(digits).union(letters)

    @Test func everyByteIsClassifiedAsTheRFCsSay() {
        for byte in SyntaxTests.allBytes {
            let control = byte <= 0x1f || byte == 0x7f  // C0 and DEL
            #expect(ByteClass.isControl(byte) == control, "0x\(String(byte, radix: 16))")
            #expect(ByteClass.isPathByte(byte) == (!control && byte != 0x20), "0x\(String(byte, radix: 16))")
            #expect(ByteClass.isVisibleASCII(byte) == (0x21...0x7e).contains(byte), "0x\(String(byte, radix: 16))")
            #expect(ByteClass.isAlphanumeric(byte) == (SyntaxTests.digits.contains(byte) || SyntaxTests.letters.contains(byte)))
            #expect(ByteClass.isTokenByte(byte) == SyntaxTests.tchar.contains(byte), "0x\(String(byte, radix: 16))")
            #expect(ByteClass.isFieldValueByte(byte) == (byte == 0x20 || (0x21...0x7e).contains(byte)))
            #expect(ByteClass.isAuthorityByte(byte)
                == (SyntaxTests.digits.contains(byte) || SyntaxTests.letters.contains(byte) || ".-:".utf8.contains(byte)))
            #expect(ByteClass.isTargetPathByte(byte) == ((0x21...0x7e).contains(byte) && !"?#\\".utf8.contains(byte)))
        }
    }

    @Test func tokensAndFieldValues() {
        #expect(OutputSyntax.isToken("Docker-Distribution-Api-Version".utf8))
        #expect(OutputSyntax.isToken("x!#$%&'*+-.^_`|~9".utf8))
        for bad in ["", "a b", "a:b", "a\r\nb", "é", "a(b)", "a/b"] { #expect(!OutputSyntax.isToken(bad.utf8), "\(bad)") }
        #expect(OutputSyntax.isFieldValue("registry/2.0 with spaces".utf8))
        for bad in ["a\rb", "a\nb", "a\tb", "\u{7f}", "é"] { #expect(!OutputSyntax.isFieldValue(bad.utf8), "\(bad)") }
    }

    @Test func safeRequestTargets() {
        func safe(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { OutputSyntax.isSafeRequestTarget($0) } }
        #expect(safe(Array("/v2/x/blobs/sha256:ab?q=1".utf8)))
        #expect(safe([0x2f, 0x80, 0xff]))  // percent-decoding is not ours to judge: high bytes pass
        for bad in ["", "v2/x", "http://x", "/a b", "/a\r\nLocation: x", "/a\u{0}", "/a\u{7f}"] {
            #expect(!safe(Array(bad.utf8)), "\(bad)")
        }
    }

    @Test(arguments: [
        ("https://mirror.example", true), ("http://mirror.example:8080/base/path/", true), ("https://Mirror.Example", true),
        ("https://m.example/a?b", false), ("https://m.example/a#b", false), ("https://m.example\\@evil", false),
        ("https://:80", false), ("https://", false), ("ftp://m.example", false), ("HTTPS://m.example", false),
        ("https://user@m.example", false), ("https://m.example/a b", false), ("https://m_example", false),
    ])
    func targetURLs(text: String, accepted: Bool) {
        #expect(OutputSyntax.isTargetURL(text.utf8) == accepted)
    }

    /// The JSON escaper, checked against Foundation's parser (it must read back the same text) and
    /// for the escapes JSON embedded in HTML/JavaScript needs.
    @Test func jsonStringsRoundTripThroughFoundation() throws {
        var generator = SeededGenerator(seed: 2_028)
        var samples = ["", "plain", "quote \" backslash \\ slash /", "line\nfeed\rreturn\ttab", "\u{0}\u{1}\u{1f}\u{7f}",
                       "\u{2028}\u{2029}", "é ✓ 🐧", "</script>"]
        for _ in 0..<500 {
            let scalars = (0..<Int.random(in: 0...24, using: &generator)).compactMap { _ in
                Unicode.Scalar(UInt32.random(in: 0...0x2100, using: &generator))
            }
            samples.append(String(String.UnicodeScalarView(scalars)))
        }
        for text in samples {
            let literal = TextEscaping.jsonString(text)
            let parsed = try JSONSerialization.jsonObject(with: Data(literal.utf8), options: [.fragmentsAllowed]) as? String
            #expect(parsed == text, "\(literal)")
            #expect(!literal.unicodeScalars.contains { $0.value < 0x20 || $0 == "\u{2028}" || $0 == "\u{2029}" }, "\(literal)")
        }
        #expect(TextEscaping.jsonString("a\u{1}\u{2028}") == "\"a\\u0001\\u2028\"")
    }

    @Test func displayBytesShowOnlyPrintableASCII() {
        #expect(TextEscaping.displayBytes(Array("GET /x y".utf8)) == "GET /x y")
        #expect(TextEscaping.displayBytes([0x0d, 0x0a, 0x1b, 0x7f, 0xff, 0x41]) == "\\x0d\\x0a\\x1b\\x7f\\xffA")
        for byte in SyntaxTests.allBytes {
            let shown = TextEscaping.displayBytes([byte])
            #expect(shown.utf8.allSatisfy { $0 == 0x20 || (0x21...0x7e).contains($0) })
        }
    }
}
