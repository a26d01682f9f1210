/// Escapes for text that leaves the process: JSON string literals and log/terminal display.
/// One definition, so every JSON writer (CLI, sidecar, reports) escapes the same way.
public enum TextEscaping {
    /// `text` as a JSON string literal (RFC 8259). Besides `"` and `\`, every C0 control is escaped
    /// (`\n`, `\r`, `\t` by name, others as `\u00XX`), and so are U+2028 and U+2029, which JSON
    /// allows raw but JavaScript string literals do not, so the output can be embedded in a page.
    public static func jsonString(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Bytes for a log line or message: visible ASCII and space as they are, every other byte as
    /// `\xNN`, so that no control byte (CR, LF, ESC) reaches a terminal or a log.
    public static func displayBytes(_ bytes: some Sequence<UInt8>) -> String {
        var out = ""
        for byte in bytes {
            if byte == 0x20 || ByteClass.isVisibleASCII(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}
