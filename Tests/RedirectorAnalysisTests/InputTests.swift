import Foundation
import RedirectorAnalysis
import Testing

private func lines(of input: LogInput) throws -> [String] {
    var out: [String] = []
    while let line = try input.nextLine() { out.append(String(decoding: line, as: UTF8.self)) }
    return out
}

@Suite struct LogInputTests {
    @Test func plainAndGzipGiveTheSameLines() throws {
        let directory = TemporaryDirectory()
        let text = (0..<5000).map { "line \($0) " + String(repeating: "x", count: $0 % 97) }.joined(separator: "\n") + "\n"
        let expected = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        for gzip in [false, true] {
            for background in [true, false] {
                // A 4 KiB buffer forces many refills with lines straddling them.
                let input = try LogInput(path: directory.write(gzip ? "a.gz" : "a.log", text, gzip: gzip), bufferSize: 4096,
                                         background: background)
                #expect(try lines(of: input) == expected)
                #expect(input.lineNumber == 5000)
                #expect(input.bytesRead == Int64(text.utf8.count))
                #expect(input.warning == nil)
            }
        }
    }

    @Test func lineEndings() throws {
        let directory = TemporaryDirectory()
        let input = try LogInput(path: directory.write("crlf.log", "a\r\nb\n\nc\r\nlast without newline"))
        #expect(try lines(of: input) == ["a", "b", "", "c", "last without newline"])
    }

    @Test func oversizedLinesAreSkippedAndCounted() throws {
        let directory = TemporaryDirectory()
        let long = String(repeating: "y", count: 10_000)
        let input = try LogInput(path: directory.write("long.log", "first\n\(long)\nsecond\n\(long)"), bufferSize: 4096)
        #expect(try lines(of: input) == ["first", "second"])
        #expect(input.oversizedLines == 2)
        #expect(input.lineNumber == 4)
    }

    @Test func truncatedGzipIsAWarningNotACrash() throws {
        let directory = TemporaryDirectory()
        let text = (0..<20_000).map { "entry \($0) \($0 &* 7919)" }.joined(separator: "\n")
        let path = directory.write("t.gz", text, gzip: true)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        for background in [true, false] {
            let input = try LogInput(path: path, background: background)
            let read = try lines(of: input)
            #expect(!read.isEmpty && read.count < 20_000)
            #expect(input.warning != nil)
        }
    }

    @Test func abandonedInputStopsItsReader() throws {
        let directory = TemporaryDirectory()
        let path = directory.write("big.gz", String(repeating: "a line of text\n", count: 400_000), gzip: true)
        for _ in 0..<20 {
            let input = try LogInput(path: path, bufferSize: 4096)
            #expect(try input.nextLine() != nil)
        }
    }

    @Test func missingFilesAndDirectoriesAreErrors() {
        #expect(throws: LogInputError.self) { try LogInput(path: "/nonexistent/file.log") }
        #expect(throws: LogInputError.self) { try LogInput(path: "/tmp") }
    }
}

@Suite struct DistinctCounterTests {
    @Test func exactWhileSmall() {
        var counter = DistinctCounter()
        for value in 0..<1000 {
            counter.insert(AddressHash.v4(UInt32(value)))
            counter.insert(AddressHash.v4(UInt32(value)))
        }
        #expect(counter.isExact && counter.count == 1000)
    }

    @Test(arguments: [2_000, 20_000, 300_000])
    func estimatesWithinTwoPercent(count: Int) {
        var counter = DistinctCounter()
        for value in 0..<count { counter.insert(AddressHash.v4(UInt32(value) &* 2_654_435_761)) }
        #expect(!counter.isExact)
        let error = abs(Double(counter.count - count)) / Double(count)
        #expect(error < 0.02, "estimate \(counter.count) for \(count)")
        #expect(counter.byteCount <= 16_384)
    }

    @Test func mergeIsAUnion() {
        var a = DistinctCounter()
        var b = DistinctCounter()
        for value in 0..<600 { a.insert(AddressHash.v6(UInt128(value) << 64)) }
        for value in 300..<900 { b.insert(AddressHash.v6(UInt128(value) << 64)) }
        var union = a
        union.merge(b)
        #expect(union.isExact && union.count == 900)
        var big = DistinctCounter()
        for value in 0..<50_000 { big.insert(AddressHash.v4(UInt32(value))) }
        union.merge(big)
        let expected = 50_000 + 900
        #expect(abs(Double(union.count - expected)) / Double(expected) < 0.02)
        var small = DistinctCounter()
        small.insert(AddressHash.v4(1))
        small.merge(big)
        #expect(abs(Double(small.count - 50_000)) / 50_000 < 0.02)
    }
}
