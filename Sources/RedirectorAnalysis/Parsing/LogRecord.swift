/// The fields of one access-log line that analysis needs, as byte ranges into the line.
///
/// The buffers point into the line being parsed (or a parser's scratch buffer) and are valid only
/// until the parser is called again. Absent fields are empty; absent numbers are ``unknown``.
public struct LogRecord {
    /// The TCP peer (`$remote_addr`, `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`, `c_ip`), or empty.
    public var peer: UnsafeRawBufferPointer
    /// The `X-Forwarded-For` value, or empty.
    public var forwardedFor: UnsafeRawBufferPointer
    /// The request method, or empty.
    public var method: UnsafeRawBufferPointer
    /// The raw request target: path and optional `?query`, or empty.
    public var target: UnsafeRawBufferPointer
    /// The response status, or ``unknown``.
    public var status: Int32
    /// Response bytes sent to the client (body bytes where the format has them), 0 when absent.
    public var bytes: UInt64
    /// Request time in Unix seconds, or ``unknownTime``.
    public var time: Int64

    /// The value of ``status`` when the line has none.
    public static let unknown: Int32 = -1
    /// The value of ``time`` when the line has none.
    public static let unknownTime = Int64.min

    /// An empty record.
    public init() {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        peer = empty
        forwardedFor = empty
        method = empty
        target = empty
        status = LogRecord.unknown
        bytes = 0
        time = LogRecord.unknownTime
    }

    /// Resets every field to absent.
    @inline(__always)
    public mutating func reset() {
        self = LogRecord()
    }
}

/// Why a line was not analyzed. Malformed lines are counted per reason and never stop the run.
public enum MalformedReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// The line does not have the format's layout (a literal or field is missing).
    case layout = 0
    /// The status field is not a number.
    case status
    /// The bytes field is not a number.
    case bytes
    /// The time field cannot be read.
    case time
    /// The line is longer than the reader's buffer.
    case tooLong
    /// A CSV line came before the header naming its columns, or has too few columns.
    case columns
    /// A quoted CSV field is not closed.
    case quoting

    /// A short, stable key (used in JSON and CSV output).
    public var key: String {
        switch self {
        case .layout: return "layout"
        case .status: return "status"
        case .bytes: return "bytes"
        case .time: return "time"
        case .tooLong: return "too_long"
        case .columns: return "columns"
        case .quoting: return "quoting"
        }
    }

    /// A human explanation.
    public var description: String {
        switch self {
        case .layout: return "line does not match the log format"
        case .status: return "status is not a number"
        case .bytes: return "byte count is not a number"
        case .time: return "time cannot be parsed"
        case .tooLong: return "line longer than the read buffer"
        case .columns: return "CSV line before its header or with too few columns"
        case .quoting: return "unterminated quoted CSV field"
        }
    }
}

/// What a parser made of one line.
public enum LineOutcome: Equatable, Sendable {
    /// The record was filled in.
    case record
    /// Not a request: an empty line, a comment or a header (which a parser may learn from).
    case skip
    /// The line is malformed.
    case malformed(MalformedReason)
}

/// Turns one log line into a ``LogRecord``. Parsers work on bytes, never allocate per line and
/// never trap on any input.
public protocol LogParser {
    /// Parses `line` (without its line terminator).
    mutating func parse(_ line: UnsafeRawBufferPointer, into record: inout LogRecord) -> LineOutcome
}

/// Options a log format may use when it makes a parser.
public struct LogFormatOptions: Sendable {
    /// A format string (NGINX `log_format` or Envoy format), nil for the format's default.
    public var formatString: String?

    /// Creates options.
    public init(formatString: String? = nil) {
        self.formatString = formatString
    }
}

/// Why a format string or option was rejected.
public struct LogFormatError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public let description: String

    /// Creates an error.
    public init(_ description: String) {
        self.description = description
    }
}

/// A log format plugin: a name for `--format` and a parser factory. Adding a format means one
/// new type conforming to this protocol and one entry in ``LogFormats/all``.
public protocol LogFormat: Sendable {
    /// The `--format` name, e.g. `combined`.
    var name: String { get }
    /// One line for `--help` and documentation.
    var summary: String { get }
    /// Makes a parser, validating the options.
    func makeParser(options: LogFormatOptions) throws -> any LogParser
}

/// The registry of log formats.
public enum LogFormats {
    /// Every known format, in the order `--help` lists them.
    public static let all: [any LogFormat] = [
        NginxLogFormat.combined, NginxLogFormat.custom, EnvoyLogFormat(), GCSUsageLogFormat(),
    ]

    /// The format called `name`.
    public static func format(named name: String) -> (any LogFormat)? {
        all.first { $0.name == name }
    }
}
