/// Minimal JSON text helpers for the few JSON texts the sidecar writes by hand (the `/readyz` body and
/// JSON log lines), so it needs no Foundation encoder.
enum JSON {
    /// `text` as a JSON string literal: quotes, backslashes and control characters escaped.
    ///
    /// Every JSON string the sidecar writes goes through here, so the escaping rule lives in one place.
    static func string(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
