import RedirectorCore

/// pyasn `ipasn` dumps: `prefix<TAB>asn` lines, `;` comments (plain or gzip; see ``SourceFile``).
/// Dumps hold half a million lines, so lines are parsed as bytes.
struct PyASNImporter: SourceImporter {
    let format = "pyasn"
    let summary = "pyasn ipasn dump: prefix<TAB>asn per line, ';' comments, plain or .gz"

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        var data = ImportedData()
        data.prefixes.reserveCapacity(bytes.count / 20)
        try bytes.withUnsafeBytes { raw in
            try forEachLineRange(raw) { number, range in
                let line = UnsafeRawBufferPointer(rebasing: raw[range])
                guard let first = line.first, first != UInt8(ascii: ";") else { return }
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
        return data
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
