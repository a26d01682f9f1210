import CZlib
import Foundation
import RedirectorAnalysis
import RedirectorCompiler
import RedirectorCore
@_exported import RedirectorTestSupport


/// examples/simple compiled in memory, once, from the repository's data alone: its ASN table is
/// the committed pyasn excerpt (the config's `otherwise`), whether or not this machine has
/// Debian's location database, so the expectations below do not depend on the machine.
let simpleSnapshot: Snapshot = {
    do {
        let examples = repositoryRoot.appendingPathComponent("examples").path
        let original = try String(contentsOfFile: examples + "/simple/redirector.yaml", encoding: .utf8)
        let systemDatabase = "/usr/share/libloc-location/location.db"
        precondition(original.contains(systemDatabase), "examples/simple no longer reads \(systemDatabase)")
        let text = original.replacingOccurrences(of: "../data/", with: examples + "/data/")
            .replacingOccurrences(of: systemDatabase, with: "/nonexistent/location.db")
        let directory = TemporaryDirectory()
        let contents = try SnapshotCompiler(configPath: directory.write("redirector.yaml", text)).compile()
        return try Snapshot(bytes: contents.encoded(), name: "simple")
    } catch {
        fatalError("cannot compile examples/simple: \(error)")
    }
}()

/// Parses `line` with `parser`; returns the outcome and the record's fields as text.
func parse(_ line: String, with parser: inout any LogParser) -> (LineOutcome, ParsedFields) {
    var copy = line
    var record = LogRecord()
    return copy.withUTF8 { bytes in
        let outcome = parser.parse(UnsafeRawBufferPointer(bytes), into: &record)
        return (outcome, ParsedFields(record))
    }
}

/// A record's fields as Swift values, for assertions.
struct ParsedFields: Equatable {
    var peer = ""
    var forwardedFor = ""
    var method = ""
    var target = ""
    var status: Int32 = -1
    var bytes: UInt64 = 0
    var time = LogRecord.unknownTime
}

extension ParsedFields {
    /// The fields of a parsed record (in an extension, so the memberwise initializer stays).
    init(_ record: LogRecord) {
        peer = String(decoding: record.peer, as: UTF8.self)
        forwardedFor = String(decoding: record.forwardedFor, as: UTF8.self)
        method = String(decoding: record.method, as: UTF8.self)
        target = String(decoding: record.target, as: UTF8.self)
        status = record.status
        bytes = record.bytes
        time = record.time
    }
}

extension TemporaryDirectory {
    /// Writes `text` to `name` (gzip-compressed when `gzip`); returns the path.
    func write(_ name: String, _ text: String, gzip: Bool = false) -> String {
        let path = path(name)
        if gzip {
            let file = gzopen(path, "wb")
            var bytes = Array(text.utf8)
            _ = bytes.withUnsafeMutableBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
            gzclose(file)
        } else {
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        }
        return path
    }
}

/// Runs `lines` (joined by newlines) through an analyzer with the given format.
func analyze(_ lines: [String], format: String = "combined", formatString: String? = nil, snapshot: Snapshot = simpleSnapshot,
             asnTable: ASNTable? = nil, options: AnalyzerOptions = AnalyzerOptions()) throws -> AnalysisReport {
    let directory = TemporaryDirectory()
    let path = directory.write("input.log", lines.joined(separator: "\n") + "\n")
    let analyzer = TrafficAnalyzer(snapshot: snapshot, asnTable: asnTable, options: options)
    guard let logFormat = LogFormats.format(named: format) else { fatalError("unknown format \(format)") }
    var parser = try logFormat.makeParser(options: LogFormatOptions(formatString: formatString))
    try analyzer.consume(try LogInput(path: path), parser: &parser)
    return analyzer.report(format: format, elapsedSeconds: 1)
}
