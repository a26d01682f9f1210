import Foundation
import RedirectorCore

/// AWS `ip-ranges.json`: `prefixes[].ip_prefix` and `ipv6_prefixes[].ipv6_prefix` with `region`
/// and `service`. Option `services` keeps only the listed services. `syncToken` is the publisher's
/// version, `createDate` its date.
struct AWSRangesImporter: SourceImporter {
    let format = "aws-ip-ranges"
    let summary = "AWS ip-ranges.json (prefixes, ipv6_prefixes; region; services filter)"

    private struct Document: Decodable {
        struct Entry: Decodable {
            var ip_prefix: String?
            var ipv6_prefix: String?
            var region: String
            var service: String
        }
        var syncToken: PublisherField?
        var createDate: PublisherField?
        var prefixes: [Entry]
        var ipv6_prefixes: [Entry]
    }

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let document = try decodeJSON(Document.self, from: bytes, name: name)
        var data = ImportedData()
        data.publisherVersion = document.syncToken?.text
        data.setPublished(document.createDate?.text, field: "createDate", expected: "YYYY-MM-DD-HH-MM-SS", name: name,
                          parse: PublisherDate.dashed)
        for (list, key) in [(document.prefixes, "prefixes"), (document.ipv6_prefixes, "ipv6_prefixes")] {
            for (index, entry) in list.enumerated() where options.services.isEmpty || options.services.contains(entry.service) {
                guard let text = entry.ip_prefix ?? entry.ipv6_prefix else {
                    throw ImportError(origin: "\(name): \(key)[\(index)]", message: "entry has no ip_prefix/ipv6_prefix")
                }
                try data.addPrefix(text, region: entry.region, origin: "\(name): \(key)[\(index)]")
            }
        }
        return data
    }
}
