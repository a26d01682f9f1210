/// What may reach a response header: checked when a snapshot is opened (and by the compiler), so
/// that decisions can copy these bytes into a `Location` without looking at them again.
public enum OutputSyntax {
    /// Path text as a decision copies it from a request: no control byte, space or DEL (bytes
    /// 0x80–0xff pass, as they do in request paths).
    public static func isPathText(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.allSatisfy(ByteClass.isPathByte)
    }

    /// An RFC 9110 token (header name): one or more ``ByteClass/isTokenByte(_:)``.
    public static func isToken(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy(ByteClass.isTokenByte)
    }

    /// A pool name: token bytes and `/` (region-table pools are `provider/region`), so a name
    /// can stand in a response header and in the `url(pool):reason` text unambiguously.
    public static func isPoolName(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.allSatisfy { ByteClass.isTokenByte($0) || $0 == UInt8(ascii: "/") }
    }

    /// A configured header value: ``ByteClass/isFieldValueByte(_:)`` only (no CR, LF or other controls).
    public static func isFieldValue(_ bytes: some Sequence<UInt8>) -> Bool {
        bytes.allSatisfy(ByteClass.isFieldValueByte)
    }

    /// A request target a decision may copy into a `Location`: starts with `/` and holds only
    /// ``ByteClass/isPathByte(_:)`` (no header injection, no scheme-relative or absolute-URL tricks).
    @inlinable @inline(__always)
    public static func isSafeRequestTarget(_ target: UnsafeRawBufferPointer) -> Bool {
        guard target.count > 0, target[0] == UInt8(ascii: "/") else { return false }
        for byte in target where !ByteClass.isPathByte(byte) { return false }
        return true
    }

    /// The length of the request target's path (the bytes before its first `?`) and whether the
    /// target ``isSafeRequestTarget(_:)``: the decision path's one pass over the target, eight
    /// bytes at a time.
    @inline(__always)
    static func scanRequestTarget(_ target: UnsafeRawBufferPointer) -> (pathLength: Int, isSafe: Bool) {
        let count = target.count
        guard let base = target.baseAddress, count > 0 else { return (0, false) }
        let question = 0x0101_0101_0101_0101 &* UInt64(UInt8(ascii: "?"))
        var pathLength = -1  // no `?` yet
        var unsafe: UInt64 = 0
        @inline(__always) func scan(_ word: UInt64, at offset: Int) {
            unsafe |= WordScan.nonPathBytes(word)
            guard pathLength < 0 else { return }
            let found = WordScan.zeroBytes(word ^ question)
            if found != 0 { pathLength = offset &+ found.trailingZeroBitCount &>> 3 }
        }
        var offset = 0
        while offset &+ 8 <= count {
            scan(WordScan.word(base, offset), at: offset)
            offset &+= 8
        }
        if offset < count {
            if count >= 8 {
                // The last eight bytes, overlapping bytes already scanned: checking them twice
                // changes nothing, and they hold no `?` unless one was found.
                scan(WordScan.word(base, count &- 8), at: count &- 8)
            } else {
                for index in offset..<count {
                    let byte = target[index]
                    if !ByteClass.isPathByte(byte) { unsafe = 1 }
                    if pathLength < 0 && byte == UInt8(ascii: "?") { pathLength = index }
                }
            }
        }
        return (pathLength < 0 ? count : pathLength, unsafe == 0 && target[0] == UInt8(ascii: "/"))
    }

    /// `http://` or `https://`, a non-empty authority of letters, digits, `.`, `-` and `:` (port),
    /// then an optional path of visible bytes without `?`, `#` or `\`: exactly what the compiler's
    /// target normalization produces. The authority ends the base URL, and a decision only ever
    /// appends `/…` or `?…` to it, so no request can change the host a redirect names.
    public static func isTargetURL(_ bytes: some Collection<UInt8>) -> Bool {
        let bytes = Array(bytes)
        var index: Int
        if startsWith(bytes, "https://") {
            index = 8
        } else if startsWith(bytes, "http://") {
            index = 7
        } else {
            return false
        }
        let authorityStart = index
        while index < bytes.count && bytes[index] != UInt8(ascii: "/") {
            guard ByteClass.isAuthorityByte(bytes[index]) else { return false }
            index += 1
        }
        guard index > authorityStart, bytes[authorityStart] != UInt8(ascii: ":") else { return false }
        return bytes[index...].allSatisfy(ByteClass.isTargetPathByte)
    }

    /// Whether a rewrite template's output starts with `/` (or is empty): a template that started
    /// with a capture could continue the target's host (`https://mirror.example` + `@evil.example`).
    static func templateStartsPath(_ template: [TemplatePart], strings: StringTable) -> Bool {
        for part in template {
            switch part {
            case .path:
                return true
            case .capture:
                return false
            case .literal(let reference):
                let bytes = strings.bytes(reference)
                if bytes.isEmpty { continue }
                return bytes[0] == UInt8(ascii: "/")
            }
        }
        return true
    }

    private static func startsWith(_ bytes: [UInt8], _ prefix: StaticString) -> Bool {
        guard bytes.count >= prefix.utf8CodeUnitCount else { return false }
        let start = prefix.utf8Start
        for index in 0..<prefix.utf8CodeUnitCount where bytes[index] != start[index] { return false }
        return true
    }
}
