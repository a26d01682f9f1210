import Testing
import RedirectorAnalysis

private func withBytes<T>(_ text: String, _ body: (UnsafeRawBufferPointer) -> T) -> T {
    var copy = text
    return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
}

@Suite struct ByteScanningTests {
    @Test func commonLogTime() {
        #expect(withBytes("10/Oct/2000:13:55:36 -0700", ByteScanning.parseCommonLogTime) == 971_211_336)
        #expect(withBytes("13/May/2024:00:00:00 +0000", ByteScanning.parseCommonLogTime) == 1_715_558_400)
        #expect(withBytes("29/Feb/2024:23:59:59 +0130", ByteScanning.parseCommonLogTime) == 1_709_245_799)
        for bad in ["32/May/2024:00:00:00 +0000", "13/Mai/2024:00:00:00 +0000", "13/May/2024:24:00:00 +0000",
                    "13/May/2024:00:00:00 0000", "13/May/2024:00:00:00", "", "13/May/2024:00:00:00 +00000"] {
            #expect(withBytes(bad, ByteScanning.parseCommonLogTime) == nil, "\(bad)")
        }
    }

    @Test func iso8601() {
        #expect(withBytes("2024-05-13T00:00:00Z", ByteScanning.parseISO8601) == 1_715_558_400)
        #expect(withBytes("2024-05-13T00:00:00.123Z", ByteScanning.parseISO8601) == 1_715_558_400)
        #expect(withBytes("2024-05-12T17:00:00-07:00", ByteScanning.parseISO8601) == 1_715_558_400)
        #expect(withBytes("2024-05-13T02:00:00+0200", ByteScanning.parseISO8601) == 1_715_558_400)
        #expect(withBytes("2024-05-13 00:00:00", ByteScanning.parseISO8601) == 1_715_558_400)
        for bad in ["2024-13-13T00:00:00Z", "2024-05-13T00:00:00.Z", "2024-05-13T00:00:00Zjunk", "2024-05-13", "yesterday"] {
            #expect(withBytes(bad, ByteScanning.parseISO8601) == nil, "\(bad)")
        }
    }

    @Test func epochSeconds() {
        #expect(withBytes("1715558400.123", ByteScanning.parseEpochSeconds) == 1_715_558_400)
        #expect(withBytes("1715558400", ByteScanning.parseEpochSeconds) == 1_715_558_400)
        #expect(withBytes("17155584x0", ByteScanning.parseEpochSeconds) == nil)
        #expect(withBytes("1715558400.1x", ByteScanning.parseEpochSeconds) == nil)
        #expect(withBytes("99999999999999999999", ByteScanning.parseEpochSeconds) == nil)
    }

    @Test func civilDatesRoundTrip() {
        for days in stride(from: 0, to: 2_932_896, by: 997) {
            let date = ByteScanning.civilDate(daysSinceEpoch: days)
            #expect(ByteScanning.daysSinceEpoch(year: date.year, month: date.month, day: date.day) == days)
        }
        #expect(ByteScanning.civilDate(daysSinceEpoch: 19_856) == (2024, 5, 13))
    }

    @Test func numbers() {
        #expect(withBytes("0", ByteScanning.parseUnsigned) == 0)
        #expect(withBytes("1234567890123456789", ByteScanning.parseUnsigned) == 1_234_567_890_123_456_789)
        #expect(withBytes("12345678901234567890", ByteScanning.parseUnsigned) == nil)
        #expect(withBytes("-1", ByteScanning.parseUnsigned) == nil)
        #expect(withBytes("", ByteScanning.parseUnsigned) == nil)
        #expect(withBytes("1 ", ByteScanning.parseUnsigned) == nil)
    }

    @Test func findsLiterals() {
        withBytes("abc\" \"def\" \"ghi") { line in
            withBytes("\" \"") { literal in
                #expect(ByteScanning.find(literal, in: line, from: 0) == 3)
                #expect(ByteScanning.find(literal, in: line, from: 4) == 9)
                #expect(ByteScanning.find(literal, in: line, from: 10) == nil)
            }
        }
        let long = String(repeating: "x", count: 100) + "|"
        withBytes(long) { line in
            #expect(ByteScanning.find(UInt8(ascii: "|"), in: line, from: 0) == 100)
            #expect(ByteScanning.find(UInt8(ascii: "|"), in: line, from: 101) == nil)
            #expect(ByteScanning.findLast(UInt8(ascii: "x"), in: line, 0, 500) == 99)
        }
    }

    @Test func formatting() {
        #expect(Formatting.grouped(UInt64(1_234_567)) == "1,234,567")
        #expect(Formatting.grouped(UInt64(12)) == "12")
        #expect(Formatting.bytes(1536) == "1.50 KiB")
        #expect(Formatting.bytes(999) == "999 B")
        #expect(Formatting.percent(0.6123) == "61.2%")
        #expect(Formatting.fixed(-0.04, 1) == "-0.0" || Formatting.fixed(-0.04, 1) == "0.0")
        #expect(Formatting.iso8601(1_715_558_400) == "2024-05-13T00:00:00Z")
        #expect(Formatting.utcMinute(1_715_562_060) == "2024-05-13 01:01")
    }
}
