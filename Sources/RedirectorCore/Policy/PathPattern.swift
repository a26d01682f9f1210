/// A path pattern matched against the whole request path (the part before `?`).
///
/// Syntax: literal text with captures in braces.
/// - `{name}` one or more bytes other than `/`;
/// - `{name...}` zero or more bytes of any kind (at most one per pattern);
/// - `{name:digest}` an OCI digest segment, `algorithm:encoded` (`[^/]+:[A-Za-z0-9=_-]+`).
///
/// Examples: `/v2/{rest...}`, `/`, `/privacy{rest...}`, `/v2/{repo...}/blobs/{digest:digest}`.
/// Matching never allocates and is bounded by a step budget linear in the path length, so hostile
/// paths cannot make it slow.
public struct PathPattern: Hashable, Sendable {
    /// One piece of a pattern.
    public enum Part: Hashable, Sendable, BitwiseCopyable {
        /// Bytes that must appear as they are.
        case literal(StringRef)
        /// A capture of one or more non-`/` bytes.
        case segment
        /// A capture of zero or more bytes.
        case rest
        /// A capture of an OCI digest.
        case digest
    }

    /// The parts, in order.
    public var parts: [Part]
    /// Capture names in order (for path templates and explanations).
    public var captureNames: [String]

    /// The largest number of captures a pattern may have.
    public static let maximumCaptures = 8
    /// The step budget for matching a path of `length` bytes: linear in the length, so a pattern
    /// can never make a hostile path cost quadratic time.
    static func stepBudget(length: Int) -> Int { 16 &* (length &+ 16) }

    /// Why a pattern was rejected.
    public struct SyntaxError: Error, CustomStringConvertible {
        /// What is wrong.
        public let description: String
    }

    /// Parses a pattern, interning literals in `strings`.
    public init(parsing text: String, strings: inout StringTableBuilder) throws {
        guard text.hasPrefix("/") else {
            throw SyntaxError(description: "path pattern '\(text)' must start with '/'")
        }
        var parts: [Part] = []
        var names: [String] = []
        var literal = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            literal += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw SyntaxError(description: "path pattern '\(text)' has an unclosed '{'")
            }
            if !literal.isEmpty {
                parts.append(.literal(strings.intern(literal)))
                literal = ""
            }
            var name = String(rest[rest.index(after: open)..<close])
            let part: Part
            if name.hasSuffix("...") {
                name.removeLast(3)
                part = .rest
            } else if name.hasSuffix(":digest") {
                name.removeLast(7)
                part = .digest
            } else {
                part = .segment
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw SyntaxError(description: "path pattern '\(text)' has an invalid capture '{\(rest[rest.index(after: open)..<close])}'")
            }
            guard !names.contains(name) else {
                throw SyntaxError(description: "path pattern '\(text)' captures '\(name)' twice")
            }
            if case .rest = part, parts.contains(.rest) {
                throw SyntaxError(description: "path pattern '\(text)' has more than one '{…...}' capture")
            }
            parts.append(part)
            names.append(name)
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if literal.contains("}") {
            throw SyntaxError(description: "path pattern '\(text)' has a '}' without '{'")
        }
        if !literal.isEmpty { parts.append(.literal(strings.intern(literal))) }
        guard names.count <= PathPattern.maximumCaptures else {
            throw SyntaxError(description: "path pattern '\(text)' has more than \(PathPattern.maximumCaptures) captures")
        }
        self.parts = parts
        self.captureNames = names
    }

    /// Creates a pattern from parts (used when loading a snapshot).
    public init(parts: [Part], captureNames: [String]) {
        self.parts = parts
        self.captureNames = captureNames
    }

    /// Matches `path`, writing capture ranges (offsets into `path`) to `captures`.
    /// - Returns: whether the whole path matched.
    public func match(_ path: UnsafeRawBufferPointer, strings: StringTable,
                      captures: UnsafeMutableBufferPointer<Range<Int>>) -> Bool {
        parts.withUnsafeBufferPointer { PathPattern.match($0, path, strings: strings, captures: captures) }
    }

    /// Matches `path` against the pattern made of `parts` (how decisions read a pattern, from
    /// flat tables).
    @inline(__always)
    static func match(_ parts: UnsafeBufferPointer<Part>, _ path: UnsafeRawBufferPointer, strings: StringTable,
                      captures: UnsafeMutableBufferPointer<Range<Int>>) -> Bool {
        // Literals with at most one capture, the last part (`/v2/{rest...}`, `/pub/{name}`):
        // only one way to match, found in one pass without backtracking.
        var position = 0
        var index = 0
        while index < parts.count, case .literal(let reference) = parts[index] {
            let literal = strings.bytes(reference)
            guard Bytes.hasPrefix(UnsafeRawBufferPointer(rebasing: path[position...]), literal) else { return false }
            position &+= literal.count
            index &+= 1
        }
        if index == parts.count { return position == path.count }
        if index == parts.count &- 1 {
            let part = parts[index]
            if part != .rest {
                guard position < path.count else { return false }
                guard WordScan.firstIndex(of: UInt8(ascii: "/"), in: path, from: position) == path.count else { return false }
                if part == .digest && !PathPattern.isDigest(path, position, path.count) { return false }
            }
            if captures.count > 0 { captures[0] = position..<path.count }
            return true
        }
        return matchBacktracking(parts, path, strings: strings, captures: captures)
    }

    /// The general matcher, without the one-pass shortcut (the oracle the shortcut is tested
    /// against): longest capture first, backtracking within the step budget.
    static func matchBacktracking(_ parts: UnsafeBufferPointer<Part>, _ path: UnsafeRawBufferPointer, strings: StringTable,
                                  captures: UnsafeMutableBufferPointer<Range<Int>>) -> Bool {
        var budget = PathPattern.stepBudget(length: path.count)
        return match(parts, part: 0, at: 0, capture: 0, path, strings, captures, &budget)
    }

    private static func match(_ parts: UnsafeBufferPointer<Part>, part index: Int, at position: Int, capture: Int,
                              _ path: UnsafeRawBufferPointer, _ strings: StringTable,
                              _ captures: UnsafeMutableBufferPointer<Range<Int>>, _ budget: inout Int) -> Bool {
        budget &-= 1
        guard budget > 0 else { return false }
        guard index < parts.count else { return position == path.count }
        switch parts[index] {
        case .literal(let reference):
            let literal = strings.bytes(reference)
            guard literal.count <= path.count &- position else { return false }
            for offset in 0..<literal.count where literal[offset] != path[position &+ offset] { return false }
            return match(parts, part: index &+ 1, at: position &+ literal.count, capture: capture, path, strings, captures, &budget)
        case .segment, .digest, .rest:
            // Longest first. {rest...} may be empty and cross '/', so [position, count] are its
            // candidate ends; a segment or digest is not empty and cannot cross '/', so its are
            // [position+1, next '/'].
            let isRest = parts[index] == .rest
            var stop = position
            if isRest {
                stop = path.count
            } else {
                while stop < path.count && path[stop] != UInt8(ascii: "/") { stop &+= 1 }
            }
            let shortest = isRest ? position : position &+ 1
            while stop >= shortest {
                if parts[index] != .digest || PathPattern.isDigest(path, position, stop) {
                    if capture < captures.count { captures[capture] = position..<stop }
                    if match(parts, part: index &+ 1, at: stop, capture: capture &+ 1, path, strings, captures, &budget) {
                        return true
                    }
                }
                stop &-= 1
                guard budget > 0 else { return false }
            }
            return false
        }
    }

    /// `[^/]+:[A-Za-z0-9=_-]+` over `path[start..<end]` (which holds no `/`).
    static func isDigest(_ path: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Bool {
        var colon = -1
        var index = end &- 1
        while index >= start {
            let byte = path[index]
            if byte == UInt8(ascii: ":") {
                colon = index
                break
            }
            let allowed = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            guard allowed else { return false }
            index &-= 1
        }
        return colon > start && colon < end &- 1
    }
}
