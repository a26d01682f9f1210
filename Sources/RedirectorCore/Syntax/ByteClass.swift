/// The byte classes behind every security check: what may reach a `Location`, a header, a log line
/// or a snapshot string. Defined once here; the compiler, the snapshot loader, the decision, the
/// sidecar and the analysis all ask these, so they cannot drift apart.
public enum ByteClass {
    /// A C0 control byte (0x00–0x1f) or DEL (0x7f): never copied into a header or a log line.
    @inlinable @inline(__always)
    public static func isControl(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x7f }

    /// A byte a request path may carry into a `Location`: anything but controls, DEL and space
    /// (bytes 0x80–0xff pass, as they do in request targets).
    @inlinable @inline(__always)
    public static func isPathByte(_ byte: UInt8) -> Bool { byte > 0x20 && byte != 0x7f }

    /// Visible ASCII, 0x21–0x7e.
    @inlinable @inline(__always)
    public static func isVisibleASCII(_ byte: UInt8) -> Bool { byte > 0x20 && byte < 0x7f }

    /// An ASCII letter or digit.
    @inlinable @inline(__always)
    public static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7a)
    }

    /// An RFC 9110 `tchar`: what a header name (token) is made of.
    @inlinable @inline(__always)
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        if isAlphanumeric(byte) { return true }
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// A byte of a configured header value: visible ASCII or space (no controls, no obs-text).
    @inlinable @inline(__always)
    public static func isFieldValueByte(_ byte: UInt8) -> Bool { byte >= 0x20 && byte < 0x7f }

    /// A byte of a redirect target's authority: letters, digits, `.`, `-` and `:` (the port).
    @inlinable @inline(__always)
    public static func isAuthorityByte(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":")
    }

    /// A byte of a redirect target's base path: visible ASCII other than `?`, `#` and `\`, so that
    /// the base can only ever be continued by the decision's own `/…` or `?…`.
    @inlinable @inline(__always)
    public static func isTargetPathByte(_ byte: UInt8) -> Bool {
        isVisibleASCII(byte) && byte != UInt8(ascii: "?") && byte != UInt8(ascii: "#") && byte != UInt8(ascii: "\\")
    }
}
