import RedirectorCore

/// Where a ``LogReader`` hands each parsed request.
protocol LogRecordSink: AnyObject {
    /// Takes one request (its byte views are valid only during the call).
    func add(_ record: LogRecord)
}

/// The line bookkeeping every pass over access logs shares (``TrafficAnalyzer``,
/// ``DecisionDiffAnalyzer``): each line goes through the parser once; lines, skipped and malformed
/// lines (oversized ones included) are counted, the first malformed lines kept as examples, and
/// each request handed to a sink.
public final class LogReader {
    /// Line statistics so far (sinks add their per-record counters here).
    public internal(set) var statistics = InputStatistics()
    /// Examples of malformed lines.
    public private(set) var examples: [MalformedExample] = []
    /// Inputs read, with their line counts and warnings.
    public private(set) var inputs: [(name: String, lines: Int, warning: String?)] = []
    /// Most malformed-line examples kept.
    let maximumExamples: Int

    /// A reader keeping at most `maximumExamples` malformed lines.
    init(maximumExamples: Int) {
        self.maximumExamples = maximumExamples
    }

    /// Reads every line of `input` through `parser` into `sink`; `progress` runs about every 65,536 lines.
    func consume<Sink: LogRecordSink>(_ input: LogInput, parser: inout any LogParser, sink: Sink, progress: () -> Void) throws {
        let before = statistics.lines
        defer {
            inputs.append((input.name, Int(statistics.lines &- before), input.warning))
        }
        // The common parsers get a specialized loop; the rest go through the existential.
        if var concrete = parser as? FieldExtractorParser {
            try consumeLines(input, parser: &concrete, sink: sink, progress: progress)
            parser = concrete
        } else if var concrete = parser as? GCSUsageLogParser {
            try consumeLines(input, parser: &concrete, sink: sink, progress: progress)
            parser = concrete
        } else {
            try consumeLines(input, parser: &parser, sink: sink, progress: progress)
        }
    }

    private func consumeLines<P: LogParser, Sink: LogRecordSink>(_ input: LogInput, parser: inout P, sink: Sink,
                                                                  progress: () -> Void) throws {
        var record = LogRecord()
        var countdown = 65_536
        var oversized = input.oversizedLines
        var bytesBefore = input.bytesRead
        while let line = try input.nextLine() {
            statistics.lines &+= 1
            if input.oversizedLines != oversized {
                noteOversized(input, since: &oversized, line: input.lineNumber &- 1)
            }
            switch parser.parse(line, into: &record) {
            case .record:
                statistics.records &+= 1
                sink.add(record)
            case .skip:
                statistics.skipped &+= 1
            case .malformed(let reason):
                statistics.malformed[reason.rawValue] &+= 1
                noteExample(input: input.name, line: input.lineNumber, reason: reason, text: line)
            }
            countdown &-= 1
            if countdown == 0 {
                countdown = 65_536
                statistics.inputBytes &+= input.bytesRead &- bytesBefore
                bytesBefore = input.bytesRead
                progress()
            }
        }
        if input.oversizedLines != oversized {
            noteOversized(input, since: &oversized, line: input.lineNumber)
        }
        statistics.inputBytes &+= input.bytesRead &- bytesBefore
    }

    /// Counts the lines the input dropped as too long since `oversized` was taken.
    private func noteOversized(_ input: LogInput, since oversized: inout Int, line: Int) {
        let dropped = input.oversizedLines &- oversized
        oversized = input.oversizedLines
        statistics.lines &+= UInt64(dropped)
        statistics.malformed[MalformedReason.tooLong.rawValue] &+= UInt64(dropped)
        noteExample(input: input.name, line: line, reason: .tooLong, text: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    private func noteExample(input: String, line: Int, reason: MalformedReason, text: UnsafeRawBufferPointer) {
        guard examples.count < maximumExamples else { return }
        var shown = TextEscaping.displayBytes(text.prefix(160))
        if text.count > 160 { shown += "…" }
        examples.append(MalformedExample(input: input, line: line, reason: reason, text: shown))
    }
}

/// How a log record's client is found — the peer, or behind trusted proxies the rightmost untrusted
/// `X-Forwarded-For` entry (NGINX realip with `real_ip_recursive on`) — and how often it could not be.
struct LogClientResolution {
    private let resolver: ClientAddressResolver
    private let checksTrust: Bool
    /// The trusted prefixes, to tell whether two resolutions are the same.
    let trusted: [IPPrefix]
    /// Requests whose client address field was present but not a valid address.
    private(set) var invalid: UInt64 = 0
    /// Requests without any client address.
    private(set) var missing: UInt64 = 0

    /// Trusts `snapshot`'s trusted proxies plus `extra`.
    init(snapshot: Snapshot, extra: [IPPrefix]) {
        trusted = snapshot.policy.trustedProxies + extra
        resolver = ClientAddressResolver(trustedProxies: trusted)
        checksTrust = !trusted.isEmpty
    }

    /// The client of `record`, nil when it has none or it is malformed (counted).
    @inline(__always)
    mutating func client(of record: LogRecord) -> IPAddress? {
        var peer: IPAddress?
        if record.peer.count > 0 {
            peer = AddressParser.parseAddress(ByteScanning.trimmed(record.peer))
            if peer == nil {
                invalid &+= 1
                return nil
            }
        }
        let list = record.forwardedFor
        if let peer, list.count == 0 || !checksTrust || !resolver.isTrusted(peer) { return peer }
        if peer == nil && list.count == 0 {
            missing &+= 1
            return nil
        }
        var current = peer
        var end = list.count
        var hops = 0
        while end > 0 && hops < ClientAddressResolver.maximumHops {
            let comma = ByteScanning.findLast(UInt8(ascii: ","), in: list, 0, end) ?? -1
            let entry = ByteScanning.trimmed(UnsafeRawBufferPointer(rebasing: list[(comma &+ 1)..<end]))
            end = max(comma, 0)
            if entry.count == 0 { continue }
            hops &+= 1
            guard let address = AddressParser.parseAddress(entry) else { break }
            current = address
            if !checksTrust || !resolver.isTrusted(address) { return address }
        }
        if current == nil {
            if peer == nil { invalid &+= 1 }
        }
        return current
    }
}

/// Removes ``AnalyzerOptions/stripPathPrefix`` from request targets.
struct TargetPrefixStripper {
    private let prefix: [UInt8]

    /// Strips `prefix` (trailing slashes ignored; nil or empty strips nothing).
    init(_ prefix: String?) {
        var bytes = Array((prefix ?? "").utf8)
        while bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        self.prefix = bytes
    }

    /// `target` without the prefix when it starts with it (followed by `/`, `?` or the end).
    @inline(__always)
    func apply(_ target: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let count = prefix.count
        guard count > 0, target.count >= count else { return target }
        let matches = prefix.withUnsafeBytes { ByteScanning.hasBytes($0, in: target, at: 0) }
        guard matches else { return target }
        if target.count == count { return UnsafeRawBufferPointer(rebasing: target[..<0]) }
        let next = target[count]
        guard next == UInt8(ascii: "/") || next == UInt8(ascii: "?") else { return target }
        return UnsafeRawBufferPointer(rebasing: target[count...])
    }
}

extension AnalyzerOptions {
    /// Parses `--trusted-proxy` values: prefixes or single addresses.
    public static func trustedProxies(_ texts: [String]) throws -> [IPPrefix] {
        try texts.map { text in
            guard let prefix = IPPrefix(text) ?? IPAddress(text).map({ IPPrefix(network: $0, length: $0.family.bitWidth) }) else {
                throw LogFormatError("--trusted-proxy \(text): not an address or prefix")
            }
            return prefix
        }
    }
}

extension LogFormats {
    /// The parser of format `name` with `formatString`, or an error naming the known formats.
    public static func parser(named name: String, formatString: String?) throws -> any LogParser {
        guard let format = format(named: name) else {
            throw LogFormatError("unknown --format \(name); known: \(all.map(\.name).joined(separator: ", "))")
        }
        return try format.makeParser(options: LogFormatOptions(formatString: formatString))
    }
}
