/// What a field of a text log format carries.
public enum FieldKind: UInt8, Sendable, CaseIterable {
    /// A field analysis does not use.
    case ignored
    /// The client's TCP peer address.
    case peer
    /// The peer as `address:port` or `[v6]:port`.
    case peerWithPort
    /// The `X-Forwarded-For` value.
    case forwardedFor
    /// A whole request line: `METHOD target PROTOCOL`.
    case requestLine
    /// The request method.
    case method
    /// The raw request target (path and query).
    case target
    /// The response status.
    case status
    /// Response body bytes.
    case bodyBytes
    /// Response bytes including headers (used when the format has no body bytes).
    case totalBytes
    /// A Common Log Format time: `10/Oct/2000:13:55:36 -0700`.
    case timeLocal
    /// An ISO 8601 time.
    case timeISO8601
    /// Seconds since the epoch, optionally with a fraction.
    case timeEpoch
}

/// One piece of a tokenized format string.
public enum FormatToken: Hashable, Sendable {
    /// Text that appears verbatim in every line.
    case literal(String)
    /// A field; `name` is the variable as written, for error messages.
    case field(FieldKind, name: String)
}

extension [FormatToken] {
    /// Appends a field, first turning the literal text read before it into its own token.
    mutating func append(field kind: FieldKind, name: String, after literal: inout String) {
        if !literal.isEmpty {
            append(.literal(literal))
            literal = ""
        }
        append(.field(kind, name: name))
    }
}

/// A format string compiled to a field extractor: literals are matched in place and each field
/// extends to the first occurrence of the literal that follows it (the last literal of the format is
/// matched at the end of the line). Extraction stops after the last field analysis needs, so trailing
/// fields (referrer, user agent …) cost nothing and are not checked.
///
/// An extractor keeps scratch memory (unescaped targets, the last parsed time): use one per thread.
public final class FieldExtractor {
    /// One compiled step.
    struct Step {
        /// A literal to match, or a field to extract (kind ≠ nil).
        var kind: FieldKind?
        /// The literal (or, for a field, its terminating literal) in ``literals``.
        var literalOffset: Int
        var literalLength: Int
        /// The terminator is the format's last literal: match it at the end of the line.
        var anchoredAtEnd: Bool
    }

    private let steps: UnsafeMutableBufferPointer<Step>
    private let literals: UnsafeMutableRawBufferPointer
    private let neededSteps: Int
    /// Whether the format escapes bytes as `\xHH` (NGINX): targets are unescaped before deciding.
    let unescapesTargets: Bool
    /// Which kinds the format carries.
    public let kinds: Set<FieldKind>
    /// Scratch for unescaped targets and the last time text.
    private let scratch: UnsafeMutableRawBufferPointer
    private var lastTime: (length: Int, value: Int64) = (0, 0)
    private static let scratchSize = 65_536
    private static let timeCacheOffset = 65_536 - 64

    /// Compiles tokens.
    /// - Throws: ``LogFormatError`` when two fields touch (no literal to tell where one ends) or
    ///   when the format has no client address or request.
    public init(tokens: [FormatToken], unescapesTargets: Bool, formatName: String) throws {
        // Merge adjacent literals, drop empty ones.
        var merged: [FormatToken] = []
        for token in tokens {
            if case .literal(let text) = token {
                if text.isEmpty { continue }
                if case .literal(let previous)? = merged.last {
                    merged[merged.count - 1] = .literal(previous + text)
                    continue
                }
            }
            merged.append(token)
        }
        var kinds = Set<FieldKind>()
        for case .field(let kind, _) in merged { kinds.insert(kind) }
        guard !kinds.isDisjoint(with: [.peer, .peerWithPort, .forwardedFor]) else {
            throw LogFormatError("\(formatName): the format has no client address field")
        }
        guard !kinds.isDisjoint(with: [.requestLine, .target]) else {
            throw LogFormatError("\(formatName): the format has no request or request target field")
        }
        let hasBody = kinds.contains(.bodyBytes)

        var literalBytes: [UInt8] = []
        var literalRanges: [Int: (Int, Int)] = [:]
        for (index, token) in merged.enumerated() {
            if case .literal(let text) = token {
                literalRanges[index] = (literalBytes.count, text.utf8.count)
                literalBytes.append(contentsOf: text.utf8)
            }
        }
        let lastLiteral = merged.lastIndex { if case .literal = $0 { return true } else { return false } }
        var compiled: [Step] = []
        var needed = 0
        for (index, token) in merged.enumerated() {
            switch token {
            case .literal:
                let range = literalRanges[index] ?? (0, 0)
                compiled.append(Step(kind: nil, literalOffset: range.0, literalLength: range.1, anchoredAtEnd: false))
            case .field(var kind, let name):
                if kind == .totalBytes && hasBody { kind = .ignored }
                var terminator = (0, 0)
                var anchored = false
                if index + 1 < merged.count {
                    guard case .literal = merged[index + 1] else {
                        var next = ""
                        if case .field(_, let nextName) = merged[index + 1] { next = nextName }
                        throw LogFormatError("\(formatName): fields \(name) and \(next) are not separated by any text, so a line cannot be split between them")
                    }
                    terminator = literalRanges[index + 1] ?? (0, 0)
                    anchored = index + 1 == lastLiteral && index + 2 == merged.count
                }
                compiled.append(Step(kind: kind, literalOffset: terminator.0, literalLength: terminator.1, anchoredAtEnd: anchored))
                if kind != .ignored { needed = compiled.count }
            }
        }
        self.steps = .allocate(capacity: max(compiled.count, 1))
        _ = self.steps.initialize(from: compiled)
        let literals = UnsafeMutableRawBufferPointer.allocate(byteCount: max(literalBytes.count, 1), alignment: 8)
        literalBytes.withUnsafeBytes { literals.copyMemory(from: $0) }
        self.literals = literals
        self.neededSteps = needed
        self.unescapesTargets = unescapesTargets
        self.kinds = kinds
        self.scratch = .allocate(byteCount: FieldExtractor.scratchSize, alignment: 8)
    }

    deinit {
        steps.deallocate()
        literals.deallocate()
        scratch.deallocate()
    }

    @inline(__always)
    private func literal(_ step: Step) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(literals)[step.literalOffset..<(step.literalOffset &+ step.literalLength)])
    }

    /// Extracts the fields of `line` into `record`.
    public func parse(_ line: UnsafeRawBufferPointer, into record: inout LogRecord) -> LineOutcome {
        record.reset()
        guard line.count > 0 else { return .skip }
        var position = 0
        var index = 0
        while index < neededSteps {
            let step = steps[index]
            index &+= 1
            guard let kind = step.kind else {
                let text = literal(step)
                guard ByteScanning.hasBytes(text, in: line, at: position) else { return .malformed(.layout) }
                position &+= text.count
                continue
            }
            let end: Int
            if step.literalLength == 0 {
                end = line.count
            } else if step.anchoredAtEnd {
                end = line.count &- step.literalLength
                guard end >= position, ByteScanning.hasBytes(literal(step), in: line, at: end) else { return .malformed(.layout) }
            } else {
                guard let found = ByteScanning.find(literal(step), in: line, from: position) else { return .malformed(.layout) }
                end = found
            }
            let field = UnsafeRawBufferPointer(rebasing: line[position..<end])
            position = end
            if kind == .ignored { continue }
            if let failure = store(kind, field, into: &record) { return .malformed(failure) }
        }
        return .record
    }

    /// Stores one field; returns the failure reason, if any.
    @inline(__always)
    private func store(_ kind: FieldKind, _ field: UnsafeRawBufferPointer, into record: inout LogRecord) -> MalformedReason? {
        switch kind {
        case .ignored:
            return nil
        case .peer:
            if !ByteScanning.isDash(field) { record.peer = field }
        case .peerWithPort:
            if !ByteScanning.isDash(field) { record.peer = FieldExtractor.stripPort(field) }
        case .forwardedFor:
            if !ByteScanning.isDash(field) { record.forwardedFor = field }
        case .requestLine:
            splitRequestLine(field, into: &record)
        case .method:
            if !ByteScanning.isDash(field) { record.method = field }
        case .target:
            if !ByteScanning.isDash(field) { record.target = unescapedTarget(field) }
        case .status:
            guard !ByteScanning.isDash(field) else { return nil }
            guard let status = ByteScanning.parseUnsigned(field), status <= 999 else { return .status }
            record.status = Int32(truncatingIfNeeded: status)
        case .bodyBytes, .totalBytes:
            guard !ByteScanning.isDash(field) else { return nil }
            guard let bytes = ByteScanning.parseUnsigned(field) else { return .bytes }
            record.bytes = bytes
        case .timeLocal, .timeISO8601, .timeEpoch:
            guard !ByteScanning.isDash(field) else { return nil }
            guard let time = cachedTime(kind, field) else { return .time }
            record.time = time
        }
        return nil
    }

    /// Parses a time, reusing the previous answer when the text repeats (consecutive lines mostly share a second).
    @inline(__always)
    private func cachedTime(_ kind: FieldKind, _ field: UnsafeRawBufferPointer) -> Int64? {
        let cache = UnsafeMutableRawBufferPointer(rebasing: scratch[FieldExtractor.timeCacheOffset...])
        if field.count == lastTime.length, field.count <= cache.count,
           ByteScanning.hasBytes(field, in: UnsafeRawBufferPointer(cache), at: 0) {
            return lastTime.value
        }
        let parsed: Int64?
        switch kind {
        case .timeLocal: parsed = ByteScanning.parseCommonLogTime(field)
        case .timeISO8601: parsed = ByteScanning.parseISO8601(field)
        default: parsed = ByteScanning.parseEpochSeconds(field)
        }
        if let parsed, field.count <= cache.count, let source = field.baseAddress, let destination = cache.baseAddress {
            destination.copyMemory(from: source, byteCount: field.count)
            lastTime = (field.count, parsed)
        }
        return parsed
    }

    /// `METHOD target PROTOCOL`; a line without a protocol (HTTP/0.9) keeps everything after the method
    /// as the target, and a line without a space (garbage, TLS on a plain port) is all method.
    @inline(__always)
    private func splitRequestLine(_ field: UnsafeRawBufferPointer, into record: inout LogRecord) {
        guard !ByteScanning.isDash(field), field.count > 0 else { return }
        guard let space = ByteScanning.find(UInt8(ascii: " "), in: field, from: 0) else {
            record.method = field
            return
        }
        record.method = UnsafeRawBufferPointer(rebasing: field[..<space])
        var end = field.count
        if let last = ByteScanning.findLast(UInt8(ascii: " "), in: field, space &+ 1, field.count),
           FieldExtractor.startsWithHTTP(field, at: last &+ 1) {
            end = last
        }
        record.target = unescapedTarget(UnsafeRawBufferPointer(rebasing: field[(space &+ 1)..<end]))
    }

    /// Whether `field[offset...]` starts with `HTTP/`.
    @inline(__always)
    private static func startsWithHTTP(_ field: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        offset >= 0 && offset &+ 5 <= field.count && field[offset] == UInt8(ascii: "H")
            && field[offset &+ 1] == UInt8(ascii: "T") && field[offset &+ 2] == UInt8(ascii: "T")
            && field[offset &+ 3] == UInt8(ascii: "P") && field[offset &+ 4] == UInt8(ascii: "/")
    }

    /// Reverses NGINX's `\xHH` escaping (and `\\`, `\"`) of a target, in scratch memory.
    @inline(__always)
    private func unescapedTarget(_ field: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard unescapesTargets, ByteScanning.find(UInt8(ascii: "\\"), in: field, from: 0) != nil,
              field.count <= FieldExtractor.timeCacheOffset else { return field }
        var out = 0
        var index = 0
        while index < field.count {
            let byte = field[index]
            if byte == UInt8(ascii: "\\") && index &+ 1 < field.count {
                let next = field[index &+ 1]
                if next == UInt8(ascii: "x") && index &+ 3 < field.count,
                   let high = FieldExtractor.hex(field[index &+ 2]), let low = FieldExtractor.hex(field[index &+ 3]) {
                    scratch[out] = high &<< 4 | low
                    out &+= 1
                    index &+= 4
                    continue
                }
                if next == UInt8(ascii: "\\") || next == UInt8(ascii: "\"") {
                    scratch[out] = next
                    out &+= 1
                    index &+= 2
                    continue
                }
            }
            scratch[out] = byte
            out &+= 1
            index &+= 1
        }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[..<out])
    }

    @inline(__always)
    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte &- 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte &- 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte &- 55
        default: return nil
        }
    }

    /// `1.2.3.4:80` → `1.2.3.4`; `[2001:db8::1]:80` → `2001:db8::1`; a bare IPv6 address is kept.
    static func stripPort(_ field: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard field.count > 0 else { return field }
        if field[0] == UInt8(ascii: "[") {
            guard let close = ByteScanning.find(UInt8(ascii: "]"), in: field, from: 1) else { return field }
            return UnsafeRawBufferPointer(rebasing: field[1..<close])
        }
        guard let colon = ByteScanning.find(UInt8(ascii: ":"), in: field, from: 0) else { return field }
        if ByteScanning.find(UInt8(ascii: ":"), in: field, from: colon &+ 1) != nil { return field }
        return UnsafeRawBufferPointer(rebasing: field[..<colon])
    }
}

/// A parser that runs a ``FieldExtractor``.
public struct FieldExtractorParser: LogParser {
    /// The compiled format.
    public let extractor: FieldExtractor

    /// Wraps an extractor.
    public init(_ extractor: FieldExtractor) {
        self.extractor = extractor
    }

    /// Parses one line.
    public mutating func parse(_ line: UnsafeRawBufferPointer, into record: inout LogRecord) -> LineOutcome {
        extractor.parse(line, into: &record)
    }
}
