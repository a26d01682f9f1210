import Glibc

/// Byte-level helpers for the parsers: searching, numbers and timestamps. None allocates or traps.
public enum ByteScanning {
    /// The index of the first `byte` in `buffer[from..<buffer.count]`, or nil.
    @inline(__always)
    public static func find(_ byte: UInt8, in buffer: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let count = buffer.count
        guard start < count, let base = buffer.baseAddress else { return nil }
        // Short fields (addresses, numbers) are found faster by a loop than by a call.
        let shortEnd = min(count, start &+ 16)
        var index = start
        while index < shortEnd {
            if base.load(fromByteOffset: index, as: UInt8.self) == byte { return index }
            index &+= 1
        }
        guard index < count, let found = memchr(base + index, Int32(byte), count &- index) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// The index of the last `byte` in `buffer[start..<end]`, or nil.
    @inline(__always)
    public static func findLast(_ byte: UInt8, in buffer: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int? {
        var index = min(end, buffer.count) &- 1
        let lower = max(start, 0)
        while index >= lower {
            if buffer[index] == byte { return index }
            index &-= 1
        }
        return nil
    }

    /// Whether `buffer[at...]` starts with `literal`.
    @inline(__always)
    public static func hasBytes(_ literal: UnsafeRawBufferPointer, in buffer: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        guard offset >= 0, literal.count <= buffer.count &- offset else { return false }
        let count = literal.count
        guard count > 0 else { return true }
        guard let a = literal.baseAddress, let b = buffer.baseAddress else { return false }
        if count <= 8 {
            // Format literals are short: compare in place rather than call memcmp.
            var index = 0
            while index < count {
                if a.load(fromByteOffset: index, as: UInt8.self) != b.load(fromByteOffset: offset &+ index, as: UInt8.self) { return false }
                index &+= 1
            }
            return true
        }
        return memcmp(a, b + offset, count) == 0
    }

    /// The first occurrence of `literal` in `buffer[from...]`, or nil. `literal` must not be empty.
    @inline(__always)
    public static func find(_ literal: UnsafeRawBufferPointer, in buffer: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard literal.count > 0 else { return start }
        let first = literal[0]
        var position = start
        while let candidate = find(first, in: buffer, from: position) {
            if literal.count == 1 || hasBytes(literal, in: buffer, at: candidate) { return candidate }
            position = candidate &+ 1
        }
        return nil
    }

    /// `buffer` without the range outside `start..<end` (clamped).
    @inline(__always)
    public static func slice(_ buffer: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        let lower = max(0, min(start, buffer.count))
        let upper = max(lower, min(end, buffer.count))
        return UnsafeRawBufferPointer(rebasing: buffer[lower..<upper])
    }

    /// `field` without leading and trailing spaces and tabs.
    @inline(__always)
    public static func trimmed(_ field: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = field.count
        while start < end && (field[start] == 0x20 || field[start] == 0x09) { start &+= 1 }
        while end > start && (field[end &- 1] == 0x20 || field[end &- 1] == 0x09) { end &-= 1 }
        return UnsafeRawBufferPointer(rebasing: field[start..<end])
    }

    /// Whether the field is exactly `-` (how NGINX and Envoy log an absent value).
    @inline(__always)
    public static func isDash(_ field: UnsafeRawBufferPointer) -> Bool {
        field.count == 1 && field[0] == UInt8(ascii: "-")
    }

    /// A non-negative decimal integer of 1–19 digits, or nil.
    @inline(__always)
    public static func parseUnsigned(_ field: UnsafeRawBufferPointer) -> UInt64? {
        let count = field.count
        guard count > 0, count <= 19 else { return nil }
        var value: UInt64 = 0
        for index in 0..<count {
            let digit = field[index] &- 48
            guard digit <= 9 else { return nil }
            value = value &* 10 &+ UInt64(digit)
        }
        return value
    }

    /// Two ASCII digits at `offset`, or -1.
    @inline(__always)
    static func twoDigits(_ text: UnsafeRawBufferPointer, _ offset: Int) -> Int {
        guard offset >= 0, offset &+ 2 <= text.count else { return -1 }
        let high = text[offset] &- 48
        let low = text[offset &+ 1] &- 48
        guard high <= 9, low <= 9 else { return -1 }
        return Int(high) &* 10 &+ Int(low)
    }

    /// Four ASCII digits at `offset`, or -1.
    @inline(__always)
    static func fourDigits(_ text: UnsafeRawBufferPointer, _ offset: Int) -> Int {
        let high = twoDigits(text, offset)
        let low = twoDigits(text, offset &+ 2)
        guard high >= 0, low >= 0 else { return -1 }
        return high &* 100 &+ low
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (valid for years 0–9999).
    @inline(__always)
    public static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        // Shift the year to start in March so the leap day is the year's last day.
        let shiftedYear = month <= 2 ? year &- 1 : year
        let era = shiftedYear / 400
        let yearOfEra = shiftedYear &- era &* 400
        let monthFromMarch = month > 2 ? month &- 3 : month &+ 9
        let dayOfYear = (153 &* monthFromMarch &+ 2) / 5 &+ day &- 1
        let dayOfEra = yearOfEra &* 365 &+ yearOfEra / 4 &- yearOfEra / 100 &+ dayOfYear
        return era &* 146_097 &+ dayOfEra &- 719_468
    }

    /// The civil date of a day count since 1970-01-01 (inverse of ``daysSinceEpoch(year:month:day:)``).
    public static func civilDate(daysSinceEpoch days: Int) -> (year: Int, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
        let month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Seconds since the epoch of a validated civil time, or nil when a field is out of range.
    @inline(__always)
    static func epochSeconds(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int,
                             offsetSeconds: Int) -> Int64? {
        guard year >= 1970, year <= 9999, month >= 1, month <= 12, day >= 1, day <= 31,
              hour >= 0, hour <= 23, minute >= 0, minute <= 59, second >= 0, second <= 60 else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        return Int64(days &* 86_400 &+ hour &* 3600 &+ minute &* 60 &+ second &- offsetSeconds)
    }

    /// Month number of a three-letter English abbreviation (`Jan` … `Dec`), or -1.
    @inline(__always)
    static func monthNumber(_ text: UnsafeRawBufferPointer, _ offset: Int) -> Int {
        guard offset &+ 3 <= text.count else { return -1 }
        let key = UInt32(text[offset]) &<< 16 | UInt32(text[offset &+ 1]) &<< 8 | UInt32(text[offset &+ 2])
        switch key {
        case 0x4A_61_6E: return 1   // Jan
        case 0x46_65_62: return 2   // Feb
        case 0x4D_61_72: return 3   // Mar
        case 0x41_70_72: return 4   // Apr
        case 0x4D_61_79: return 5   // May
        case 0x4A_75_6E: return 6   // Jun
        case 0x4A_75_6C: return 7   // Jul
        case 0x41_75_67: return 8   // Aug
        case 0x53_65_70: return 9   // Sep
        case 0x4F_63_74: return 10  // Oct
        case 0x4E_6F_76: return 11  // Nov
        case 0x44_65_63: return 12  // Dec
        default: return -1
        }
    }

    /// A `±hhmm` or `±hh:mm` offset at `offset` to the end of `text`, in seconds east of UTC.
    static func zoneOffset(_ text: UnsafeRawBufferPointer, _ offset: Int) -> Int? {
        let remaining = text.count &- offset
        guard remaining == 5 || remaining == 6 else { return nil }
        let sign: Int
        switch text[offset] {
        case UInt8(ascii: "+"): sign = 1
        case UInt8(ascii: "-"): sign = -1
        default: return nil
        }
        let hours = twoDigits(text, offset &+ 1)
        let minutes = twoDigits(text, remaining == 5 ? offset &+ 3 : offset &+ 4)
        guard hours >= 0, hours <= 23, minutes >= 0, minutes <= 59 else { return nil }
        if remaining == 6 && text[offset &+ 3] != UInt8(ascii: ":") { return nil }
        return sign &* (hours &* 3600 &+ minutes &* 60)
    }

    /// NGINX `$time_local`: `10/Oct/2000:13:55:36 -0700`.
    public static func parseCommonLogTime(_ text: UnsafeRawBufferPointer) -> Int64? {
        guard text.count == 26, text[2] == UInt8(ascii: "/"), text[6] == UInt8(ascii: "/"),
              text[11] == UInt8(ascii: ":"), text[14] == UInt8(ascii: ":"), text[17] == UInt8(ascii: ":"),
              text[20] == UInt8(ascii: " "), let zone = zoneOffset(text, 21) else { return nil }
        return epochSeconds(year: fourDigits(text, 7), month: monthNumber(text, 3), day: twoDigits(text, 0),
                            hour: twoDigits(text, 12), minute: twoDigits(text, 15), second: twoDigits(text, 18),
                            offsetSeconds: zone)
    }

    /// ISO 8601 / RFC 3339: `2024-05-13T14:03:07`, optional `.fraction`, then `Z`, `±hh:mm`, `±hhmm`
    /// or nothing (UTC). A space may stand for the `T`.
    public static func parseISO8601(_ text: UnsafeRawBufferPointer) -> Int64? {
        guard text.count >= 19, text[4] == UInt8(ascii: "-"), text[7] == UInt8(ascii: "-"),
              text[10] == UInt8(ascii: "T") || text[10] == UInt8(ascii: " "),
              text[13] == UInt8(ascii: ":"), text[16] == UInt8(ascii: ":") else { return nil }
        var index = 19
        if index < text.count && (text[index] == UInt8(ascii: ".") || text[index] == UInt8(ascii: ",")) {
            index &+= 1
            let digitsStart = index
            while index < text.count && text[index] &- 48 <= 9 { index &+= 1 }
            guard index > digitsStart else { return nil }
        }
        var zone = 0
        if index < text.count {
            if text[index] == UInt8(ascii: "Z") && index &+ 1 == text.count {
                zone = 0
            } else if let parsed = zoneOffset(text, index) {
                zone = parsed
            } else {
                return nil
            }
        }
        return epochSeconds(year: fourDigits(text, 0), month: twoDigits(text, 5), day: twoDigits(text, 8),
                            hour: twoDigits(text, 11), minute: twoDigits(text, 14), second: twoDigits(text, 17),
                            offsetSeconds: zone)
    }

    /// Seconds with an optional fraction, as NGINX `$msec` logs them: `1715608987.123`.
    public static func parseEpochSeconds(_ text: UnsafeRawBufferPointer) -> Int64? {
        var end = text.count
        if let dot = find(UInt8(ascii: "."), in: text, from: 0) {
            for index in (dot &+ 1)..<text.count where text[index] &- 48 > 9 { return nil }
            end = dot
        }
        guard let seconds = parseUnsigned(slice(text, 0, end)), seconds < 253_402_300_800 else { return nil }
        return Int64(seconds)
    }
}
