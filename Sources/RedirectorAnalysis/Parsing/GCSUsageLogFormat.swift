/// Google Cloud Storage usage logs: CSV with a header row naming the columns, every value quoted
/// (`"time_micros","c_ip","c_ip_type","c_ip_region","cs_method","cs_uri","sc_status","cs_bytes","sc_bytes",…`).
///
/// Columns read: `c_ip`, `cs_method`, `cs_uri`, `sc_status`, `sc_bytes`, `time_micros`; the header
/// row may appear again (concatenated files) and re-maps the columns. For input without a header,
/// give one with `--log-format 'time_micros,c_ip,…'`.
public struct GCSUsageLogFormat: LogFormat {
    /// Creates the format.
    public init() {}

    /// `gcs`.
    public let name = "gcs"
    /// One line of help.
    public let summary = "Google Cloud Storage usage-log CSV (header row with c_ip, cs_method, cs_uri, sc_status, sc_bytes, time_micros)"

    /// Makes a parser; `formatString`, if given, is the header to assume until one appears.
    public func makeParser(options: LogFormatOptions) throws -> any LogParser {
        var parser = GCSUsageLogParser()
        if let header = options.formatString {
            var copy = header
            let ok = copy.withUTF8 { parser.learnHeader(UnsafeRawBufferPointer($0)) }
            guard ok else { throw LogFormatError("gcs: --log-format must be a header row naming at least c_ip and cs_uri") }
        }
        return parser
    }
}

/// The GCS usage-log CSV parser.
public struct GCSUsageLogParser: LogParser {
    private var ip = -1
    private var method = -1
    private var uri = -1
    private var status = -1
    private var bytes = -1
    private var time = -1
    private var lastNeeded = -1
    private let scratch: ScratchBuffer

    /// A parser that waits for a header row.
    public init() {
        scratch = ScratchBuffer(byteCount: 65_536)
    }

    /// Parses one line: a header row (re-mapping the columns), or a record.
    public mutating func parse(_ line: UnsafeRawBufferPointer, into record: inout LogRecord) -> LineOutcome {
        record.reset()
        guard line.count > 0 else { return .skip }
        if GCSUsageLogParser.isHeader(line), learnHeader(line) {
            return .skip
        }
        guard lastNeeded >= 0 else { return .malformed(.columns) }
        var position = 0
        var column = 0
        let count = line.count
        while column <= lastNeeded {
            guard position <= count else { return .malformed(.columns) }
            var start = position
            var end: Int
            var escaped = false
            if position < count && line[position] == UInt8(ascii: "\"") {
                start = position &+ 1
                var search = start
                while true {
                    guard let quote = ByteScanning.find(UInt8(ascii: "\""), in: line, from: search) else { return .malformed(.quoting) }
                    if quote &+ 1 < count && line[quote &+ 1] == UInt8(ascii: "\"") {
                        escaped = true
                        search = quote &+ 2
                        continue
                    }
                    end = quote
                    break
                }
                position = end &+ 1
                if position < count {
                    guard line[position] == UInt8(ascii: ",") else { return .malformed(.quoting) }
                }
                position &+= 1
            } else {
                end = ByteScanning.find(UInt8(ascii: ","), in: line, from: position) ?? count
                position = end &+ 1
            }
            let field = UnsafeRawBufferPointer(rebasing: line[start..<end])
            if column == ip {
                record.peer = ByteScanning.trimmed(field)
            } else if column == method {
                record.method = field
            } else if column == uri {
                record.target = escaped ? scratch.unquote(field) : field
            } else if column == status {
                if field.count > 0 {
                    guard let value = ByteScanning.parseUnsigned(field), value <= 999 else { return .malformed(.status) }
                    record.status = Int32(truncatingIfNeeded: value)
                }
            } else if column == bytes {
                if field.count > 0 {
                    guard let value = ByteScanning.parseUnsigned(field) else { return .malformed(.bytes) }
                    record.bytes = value
                }
            } else if column == time {
                if field.count > 0 {
                    guard let micros = ByteScanning.parseUnsigned(field), micros < 253_402_300_800_000_000 else {
                        return .malformed(.time)
                    }
                    record.time = Int64(micros / 1_000_000)
                }
            }
            column &+= 1
        }
        return .record
    }

    /// Whether the line looks like a header row: its first field starts with a letter (records start
    /// with a time or an address) and it names the `c_ip` and `cs_uri` columns.
    static func isHeader(_ line: UnsafeRawBufferPointer) -> Bool {
        let offset = line.count > 0 && line[0] == UInt8(ascii: "\"") ? 1 : 0
        guard offset < line.count, line[offset] >= UInt8(ascii: "a"), line[offset] <= UInt8(ascii: "z") else { return false }
        return contains("c_ip", line) && contains("cs_uri", line)
    }

    private static func contains(_ name: StaticString, _ line: UnsafeRawBufferPointer) -> Bool {
        ByteScanning.find(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), in: line, from: 0) != nil
    }

    /// Maps the columns from a header row; false when `c_ip` or `cs_uri` is missing.
    @discardableResult
    mutating func learnHeader(_ line: UnsafeRawBufferPointer) -> Bool {
        var names: [String] = []
        for part in String(decoding: line, as: UTF8.self).split(separator: ",", omittingEmptySubsequences: false) {
            var name = part.trimmingCharacters(in: " \t\r")
            if name.hasPrefix("\"") { name.removeFirst() }
            if name.hasSuffix("\"") { name.removeLast() }
            names.append(name)
        }
        func column(_ name: String) -> Int { names.firstIndex(of: name) ?? -1 }
        let ip = column("c_ip")
        let uri = column("cs_uri")
        guard ip >= 0, uri >= 0 else { return false }
        self.ip = ip
        self.uri = uri
        method = column("cs_method")
        status = column("sc_status")
        bytes = column("sc_bytes")
        time = column("time_micros")
        lastNeeded = [ip, uri, method, status, bytes, time].max() ?? -1
        return true
    }
}

extension Substring {
    /// The text without the given leading and trailing characters.
    func trimmingCharacters(in set: String) -> String {
        var start = startIndex
        var end = endIndex
        while start < end, set.contains(self[start]) { start = index(after: start) }
        while end > start, set.contains(self[index(before: end)]) { end = index(before: end) }
        return String(self[start..<end])
    }
}

/// Scratch memory owned by a parser, for values that must be rewritten (CSV `""` escapes).
final class ScratchBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(byteCount: Int) {
        bytes = .allocate(byteCount: byteCount, alignment: 8)
    }

    deinit {
        bytes.deallocate()
    }

    /// `field` with each `""` turned into `"`; the field itself when it does not fit.
    func unquote(_ field: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard field.count <= bytes.count else { return field }
        var out = 0
        var index = 0
        while index < field.count {
            let byte = field[index]
            bytes[out] = byte
            out &+= 1
            index &+= byte == UInt8(ascii: "\"") && index &+ 1 < field.count && field[index &+ 1] == UInt8(ascii: "\"") ? 2 : 1
        }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[..<out])
    }
}
