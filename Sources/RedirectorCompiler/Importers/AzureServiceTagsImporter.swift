import Foundation
import RedirectorCore

/// Azure Service Tags JSON (`ServiceTags_Public_*.json`): `values[].properties.addressPrefixes`
/// with `properties.region`. Option `tags` keeps only tags whose name starts with one of them.
/// `changeNumber` is the publisher's version (the files carry no date).
struct AzureServiceTagsImporter: SourceImporter {
    let format = "azure-service-tags"
    let summary = "Azure ServiceTags JSON (values[].properties.addressPrefixes; region; tags filter)"

    private struct Document: Decodable {
        struct Value: Decodable {
            struct Properties: Decodable {
                var region: String?
                var addressPrefixes: [String]
            }
            var name: String
            var properties: Properties
        }
        var changeNumber: PublisherField?
        var values: [Value]
    }

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let document = try decodeJSON(Document.self, from: bytes, name: name)
        var data = ImportedData()
        data.publisherVersion = document.changeNumber?.text  // the files carry no date
        for (index, value) in document.values.enumerated()
        where options.tags.isEmpty || options.tags.contains(where: { value.name.hasPrefix($0) }) {
            let region = value.properties.region.flatMap { $0.isEmpty ? nil : $0 }
            for (offset, text) in value.properties.addressPrefixes.enumerated() {
                try data.addPrefix(text, region: region, origin: "\(name): values[\(index)].properties.addressPrefixes[\(offset)]")
            }
        }
        return data
    }
}
