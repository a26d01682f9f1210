/// Number and text formatting for the reports (no Foundation, locale-independent).
public enum Formatting {
    /// `1234567` → `1,234,567`.
    public static func grouped(_ value: UInt64) -> String {
        let digits = Array(String(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return out
    }

    /// `1234567` → `1,234,567`.
    public static func grouped(_ value: Int) -> String {
        value < 0 ? "-" + grouped(UInt64(-value)) : grouped(UInt64(value))
    }

    /// `value` with `digits` decimals, rounded half away from zero.
    public static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let negative = value < 0
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9.0e18 else { return String(value) }
        let integer = UInt64(scaled)
        let whole = integer / UInt64(scale)
        var text = String(whole)
        if digits > 0 {
            var fraction = String(integer % UInt64(scale))
            while fraction.count < digits { fraction = "0" + fraction }
            text += "." + fraction
        }
        return negative && integer != 0 ? "-" + text : text
    }

    /// A share as a percentage: `0.6123` → `61.2%`.
    public static func percent(_ share: Double, digits: Int = 1) -> String {
        fixed(share * 100, digits) + "%"
    }

    /// Bytes in binary units: `1536` → `1.5 KiB`.
    public static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var amount = Double(value)
        var unit = 0
        while amount >= 1024 && unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : fixed(amount, amount < 10 ? 2 : 1) + " " + units[unit]
    }

    /// A rate: `1234567.8` → `1.23M`.
    public static func compact(_ value: Double) -> String {
        if value >= 1e9 { return fixed(value / 1e9, 2) + "G" }
        if value >= 1e6 { return fixed(value / 1e6, 2) + "M" }
        if value >= 1e3 { return fixed(value / 1e3, 1) + "k" }
        return fixed(value, 0)
    }

    /// `2024-05-13 14:00` (UTC) for a Unix time.
    public static func utcMinute(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let date = ByteScanning.civilDate(daysSinceEpoch: Int(days))
        return "\(pad(date.year, 4))-\(pad(date.month, 2))-\(pad(date.day, 2)) \(pad(Int(secondOfDay / 3600), 2)):\(pad(Int(secondOfDay % 3600 / 60), 2))"
    }

    /// `2024-05-13T14:00:00Z` for a Unix time.
    public static func iso8601(_ seconds: Int64) -> String {
        let minute = utcMinute(seconds)
        let second = ((seconds % 60) + 60) % 60
        return minute.replacingFirstSpace(with: "T") + ":" + pad(Int(second), 2) + "Z"
    }

    /// Zero-padded decimal.
    static func pad(_ value: Int, _ width: Int) -> String {
        var text = String(value)
        while text.count < width { text = "0" + text }
        return text
    }

    /// The provider label for display: `(no provider)` for the empty name.
    public static func providerLabel(_ name: String) -> String {
        name.isEmpty ? "(no provider)" : name
    }

    /// `AS15169`, or `unknown` for 0.
    public static func asnLabel(_ asn: UInt32) -> String {
        asn == 0 ? "unknown" : "AS\(asn)"
    }

    /// `text` left-aligned in `width` columns (by Unicode scalars; longer text is cut with `…`).
    public static func left(_ text: String, _ width: Int) -> String {
        let count = text.unicodeScalars.count
        if count > width { return String(String.UnicodeScalarView(text.unicodeScalars.prefix(max(width - 1, 0)))) + "…" }
        return text + String(repeating: " ", count: width - count)
    }

    /// `text` right-aligned in `width` columns.
    public static func right(_ text: String, _ width: Int) -> String {
        let count = text.unicodeScalars.count
        return count >= width ? text : String(repeating: " ", count: width - count) + text
    }
}

extension String {
    /// The string with its first space replaced.
    func replacingFirstSpace(with replacement: Character) -> String {
        guard let index = firstIndex(of: " ") else { return self }
        var copy = self
        copy.replaceSubrange(index...index, with: String(replacement))
        return copy
    }
}
