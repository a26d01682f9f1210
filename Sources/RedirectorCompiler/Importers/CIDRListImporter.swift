import Foundation
import RedirectorCore

/// Plain CSV lists: `prefix[,provider[,region]]` per line; `#` comments; an optional header line
/// starting with `prefix`.
struct CIDRListImporter: SourceImporter {
    let format = "csv"
    let summary = "CSV list: prefix[,provider[,region]] per line, '#' comments"

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        var data = ImportedData()
        try forEachLine(bytes) { number, line in
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let first = fields.first, !first.isEmpty else { return }
            if number == 1 && first.lowercased() == "prefix" { return }
            guard fields.count <= 3 else {
                throw ImportError(origin: "\(name):\(number)", message: "expected 'prefix[,provider[,region]]', got \(fields.count) fields")
            }
            let provider = fields.count > 1 && !fields[1].isEmpty ? fields[1] : nil
            let region = fields.count > 2 && !fields[2].isEmpty ? fields[2] : options.region
            try data.addPrefix(first, provider: provider, region: region, origin: "\(name):\(number)")
        }
        return data
    }
}
