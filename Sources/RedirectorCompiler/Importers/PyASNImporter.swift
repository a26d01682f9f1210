import RedirectorCore

/// pyasn `ipasn` dumps: `prefix<TAB>asn` lines, `;` comments (plain or gzip; see ``SourceFile``).
/// Dumps hold half a million lines, so lines are parsed as bytes. The dump's date (header, else
/// file name) is the publisher's version and date.
struct PyASNImporter: SourceImporter {
    let format = "pyasn"
    let summary = "pyasn ipasn dump: prefix<TAB>asn per line, ';' comments, plain or .gz"

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        var data = ImportedData()
        data.prefixes.reserveCapacity(bytes.count / 20)
        try bytes.withUnsafeBytes { raw in
            try forEachLineRange(raw) { number, range in
                let line = UnsafeRawBufferPointer(rebasing: raw[range])
                guard let first = line.first else { return }
                guard first != UInt8(ascii: ";") else {
                    if number <= 10, data.publisherVersion == nil { Self.readDumpDate(comment: line, into: &data) }
                    return
                }
                guard let tab = line.firstIndex(of: 0x09), let asn = Self.asn(UnsafeRawBufferPointer(rebasing: line[(tab + 1)...])) else {
                    let text = String(decoding: line, as: UTF8.self)
                    throw ImportError(origin: "\(name):\(number)", message: "expected 'prefix<TAB>asn', got '\(text.prefix(80))'")
                }
                guard let parsed = IPPrefix.parse(bytes: UnsafeRawBufferPointer(rebasing: line[..<tab])) else {
                    throw ImportError(origin: "\(name):\(number)", message: "invalid prefix '\(String(decoding: line[..<tab], as: UTF8.self))'")
                }
                try data.add(parsed, text: String(decoding: line[..<tab], as: UTF8.self), region: options.region, asn: asn,
                             origin: .line(file: name, number: number))
            }
        }
        if data.publisherVersion == nil { Self.readDumpDate(fileName: name, into: &data) }
        return data
    }

    /// The dump's date from its header (`; Original file : data/rib.20140513.0600.bz2`, as
    /// `pyasn_util_convert.py` writes it: the routing table's own time), as version
    /// `20140513.0600`.
    static func readDumpDate(comment: UnsafeRawBufferPointer, into data: inout ImportedData) {
        let text = String(decoding: comment, as: UTF8.self)
        guard text.dropFirst().drop(while: { $0 == " " }).hasPrefix("Original file"),
              let stamp = dateStamp(in: Substring(text), timeDigits: true) else { return }
        data.publisherVersion = String(stamp)
        data.setPublished(String(stamp), field: "header date", expected: "YYYYMMDD.HHMM", name: "\(text.prefix(80))",
                          parse: { PublisherDate.compact(Substring($0)) })
    }

    /// The dump's date from its name (`ipasn_20140513.dat.gz`, `ipasn6_20151101.dat`), as
    /// version `20140513`, when the header has none.
    static func readDumpDate(fileName name: String, into data: inout ImportedData) {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        guard base.hasPrefix("ipasn"), let stamp = dateStamp(in: Substring(base), timeDigits: false) else { return }
        data.publisherVersion = String(stamp)
        data.setPublished(String(stamp), field: "file name date", expected: "YYYYMMDD", name: name,
                          parse: { PublisherDate.compact(Substring($0)) })
    }

    /// The first run of exactly eight digits in `text` (with `.HHMM` after it when
    /// `timeDigits`), not touching other digits.
    private static func dateStamp(in text: Substring, timeDigits: Bool) -> Substring? {
        let bytes = Array(text.utf8)
        func isDigit(_ index: Int) -> Bool { index >= 0 && index < bytes.count && bytes[index] >= 0x30 && bytes[index] <= 0x39 }
        var start = 0
        while start < bytes.count {
            guard isDigit(start), !isDigit(start - 1) else { start += 1; continue }
            var end = start
            while isDigit(end) { end += 1 }
            if end - start == 8 {
                if !timeDigits { return Substring(String(decoding: bytes[start..<end], as: UTF8.self)) }
                if end + 5 <= bytes.count, bytes[end] == UInt8(ascii: "."), (1...4).allSatisfy({ isDigit(end + $0) }), !isDigit(end + 5) {
                    return Substring(String(decoding: bytes[start..<(end + 5)], as: UTF8.self))
                }
            }
            start = end
        }
        return nil
    }

    /// A decimal AS number at most `UInt32.max`: digits with an optional leading `+`.
    static func asn(_ text: UnsafeRawBufferPointer) -> UInt32? {
        let digits = text.first == UInt8(ascii: "+") ? UnsafeRawBufferPointer(rebasing: text.dropFirst()) : text
        guard !digits.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value &* 10 &+ UInt64(byte &- 0x30)
            guard value <= UInt64(UInt32.max) else { return nil }
        }
        return UInt32(value)
    }
}
