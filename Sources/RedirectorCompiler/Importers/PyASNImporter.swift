import RedirectorCore

/// pyasn `ipasn` dumps: `prefix<TAB>asn` lines, `;` comments (plain or gzip; see ``SourceFile``).
struct PyASNImporter: SourceImporter {
    let format = "pyasn"
    let summary = "pyasn ipasn dump: prefix<TAB>asn per line, ';' comments, plain or .gz"

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        var data = ImportedData()
        data.prefixes.reserveCapacity(bytes.count / 20)
        try forEachLine(bytes) { number, line in
            guard !line.isEmpty, !line.hasPrefix(";") else { return }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 2, let asn = UInt32(fields[1]) else {
                throw ImportError(origin: "\(name):\(number)", message: "expected 'prefix<TAB>asn', got '\(line.prefix(80))'")
            }
            try data.addPrefix(String(fields[0]), region: options.region, asn: asn, origin: "\(name):\(number)")
        }
        return data
    }
}
