/// Strict parsers for the dates publishers put in their files (all UTC). Strict because a date
/// that parses loosely gives a wrong source age, and an alert that fires (or stays silent)
/// for the wrong reason; a date that does not parse is a note in the compile report.
enum PublisherDate {
    /// AWS `createDate`: `YYYY-MM-DD-HH-MM-SS`.
    static func dashed(_ text: String) -> UInt64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 6, zip(parts, [4, 2, 2, 2, 2, 2]).allSatisfy({ $0.count == $1 }) else { return nil }
        let numbers = parts.compactMap { number($0) }
        guard numbers.count == 6 else { return nil }
        return unixTime(numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5])
    }

    /// ISO 8601 date and time, `YYYY-MM-DDTHH:MM:SS`, optionally with a fraction and `Z` or a
    /// `±HH:MM` offset; none means UTC (Google Cloud's `creationTime` has none).
    static func iso8601(_ text: String) -> UInt64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { return nil }
        func field(_ start: Int, _ count: Int) -> Int? { number(Substring(String(decoding: bytes[start..<(start + count)], as: UTF8.self))) }
        guard let year = field(0, 4), let month = field(5, 2), let day = field(8, 2), let hour = field(11, 2),
              let minute = field(14, 2), let second = field(17, 2) else { return nil }
        var rest = bytes[19...]
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            let digits = rest.prefix { $0 >= 0x30 && $0 <= 0x39 }
            guard !digits.isEmpty else { return nil }
            rest = rest.dropFirst(digits.count)
        }
        var offset = 0
        if rest.first == UInt8(ascii: "Z") {
            rest = rest.dropFirst()
        } else if let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            let zone = Array(rest.dropFirst())
            guard zone.count == 5, zone[2] == UInt8(ascii: ":"),
                  let hours = number(Substring(String(decoding: zone[0..<2], as: UTF8.self))),
                  let minutes = number(Substring(String(decoding: zone[3..<5], as: UTF8.self))), hours < 24, minutes < 60 else { return nil }
            offset = (hours * 60 + minutes) * 60 * (sign == UInt8(ascii: "+") ? 1 : -1)
            rest = []
        }
        guard rest.isEmpty, let local = unixTime(year, month, day, hour, minute, second) else { return nil }
        let utc = Int64(local) - Int64(offset)
        return utc >= 0 ? UInt64(utc) : nil
    }

    /// `YYYYMMDD`, optionally followed by `.HHMM` (pyasn dump and RIB file names).
    static func compact(_ text: Substring) -> UInt64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (parts.count == 1 || parts.count == 2), parts[0].count == 8, let date = number(parts[0]) else { return nil }
        var hour = 0, minute = 0
        if parts.count == 2 {
            guard parts[1].count == 4, let time = number(parts[1]) else { return nil }
            (hour, minute) = (time / 100, time % 100)
        }
        return unixTime(date / 10000, date / 100 % 100, date % 100, hour, minute, 0)
    }

    /// Seconds since 1970-01-01T00:00:00Z of a valid UTC date and time from 1970 on, nil otherwise.
    static func unixTime(_ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int, _ second: Int) -> UInt64? {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1970...9999).contains(year), (1...12).contains(month), day >= 1, day <= monthDays[month - 1],
              (0..<24).contains(hour), (0..<60).contains(minute), (0..<60).contains(second) else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm, for years from 1970).
        let y = month <= 2 ? year - 1 : year
        let era = y / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return UInt64(days * 86_400 + hour * 3_600 + minute * 60 + second)
    }

    /// A decimal number of ASCII digits only (no sign, no spaces).
    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}

extension ImportedData {
    /// Records the publisher's date `text` of field `field` read by `parse`, or, when it does
    /// not parse, a note saying so (the source still compiles; its age then falls back).
    mutating func setPublished(_ text: String?, field: String, expected: String, name: String, parse: (String) -> UInt64?) {
        guard let text else { return }
        if let time = parse(text) {
            publishedAt = time
        } else {
            notes.append("\(name): \(field) '\(SnapshotText.escaped(String(text.prefix(64))))' is not a date (\(expected)); the source's age is measured from its fetch or compile time")
        }
    }
}

/// A publisher's version or date field as text, whatever JSON type the publisher used (AWS
/// writes `syncToken` as a string, Azure `changeNumber` as a number): a field of an unexpected
/// type is no version rather than a file that fails to import.
struct PublisherField: Decodable {
    /// The text, nil for `null`, objects and arrays.
    var text: String?

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self.text = text
        } else if let number = try? container.decode(Int64.self) {
            self.text = String(number)
        } else {
            self.text = nil
        }
    }
}
