import Foundation
import RedirectorCore

/// Google Cloud `cloud.json`: `prefixes[]` with `ipv4Prefix` or `ipv6Prefix`, `scope` (the region)
/// and `service`. `syncToken` is the publisher's version, `creationTime` its date.
struct GCPRangesImporter: SourceImporter {
    let format = "gcp-cloud"
    let summary = "Google Cloud cloud.json (ipv4Prefix/ipv6Prefix, scope as region)"

    private struct Document: Decodable {
        struct Entry: Decodable {
            var ipv4Prefix: String?
            var ipv6Prefix: String?
            var scope: String?
            var service: String?
        }
        var syncToken: PublisherField?
        var creationTime: PublisherField?
        var prefixes: [Entry]
    }

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let document = try decodeJSON(Document.self, from: bytes, name: name)
        var data = ImportedData()
        data.publisherVersion = document.syncToken?.text
        data.setPublished(document.creationTime?.text, field: "creationTime", expected: "ISO 8601, e.g. 2024-01-01T00:00:00.000000",
                          name: name, parse: PublisherDate.iso8601)
        for (index, entry) in document.prefixes.enumerated()
        where options.services.isEmpty || options.services.contains(entry.service ?? "") {
            guard let text = entry.ipv4Prefix ?? entry.ipv6Prefix else {
                throw ImportError(origin: "\(name): prefixes[\(index)]", message: "entry has no ipv4Prefix/ipv6Prefix")
            }
            try data.addPrefix(text, region: entry.scope, origin: "\(name): prefixes[\(index)]")
        }
        return data
    }
}
