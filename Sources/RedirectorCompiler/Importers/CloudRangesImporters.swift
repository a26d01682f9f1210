import Foundation
import RedirectorCore

/// Decodes a JSON document, turning decoding errors into an ``ImportError`` naming the key path.
func decodeJSON<T: Decodable>(_ type: T.Type, from bytes: [UInt8], name: String) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    } catch let DecodingError.dataCorrupted(context) {
        throw ImportError(origin: name, message: "not valid JSON: \(context.debugDescription)")
    } catch let DecodingError.keyNotFound(key, context) {
        throw ImportError(origin: "\(name): \(path(context.codingPath))", message: "missing key '\(key.stringValue)'")
    } catch let DecodingError.typeMismatch(_, context) {
        throw ImportError(origin: "\(name): \(path(context.codingPath))", message: context.debugDescription)
    } catch let DecodingError.valueNotFound(_, context) {
        throw ImportError(origin: "\(name): \(path(context.codingPath))", message: context.debugDescription)
    } catch {
        throw ImportError(origin: name, message: "\(error)")
    }
}

/// A coding path as `prefixes[12].ip_prefix`.
private func path(_ codingPath: [any CodingKey]) -> String {
    codingPath.reduce("") { text, key in
        if let index = key.intValue { return "\(text)[\(index)]" }
        return text.isEmpty ? key.stringValue : "\(text).\(key.stringValue)"
    }
}

/// AWS `ip-ranges.json`: `prefixes[].ip_prefix` and `ipv6_prefixes[].ipv6_prefix` with `region`
/// and `service`. Option `services` keeps only the listed services.
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
        var prefixes: [Entry]
        var ipv6_prefixes: [Entry]
    }

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let document = try decodeJSON(Document.self, from: bytes, name: name)
        var data = ImportedData()
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

/// Google Cloud `cloud.json`: `prefixes[]` with `ipv4Prefix` or `ipv6Prefix`, `scope` (the region)
/// and `service`.
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
        var prefixes: [Entry]
    }

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let document = try decodeJSON(Document.self, from: bytes, name: name)
        var data = ImportedData()
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

/// Azure Service Tags JSON (`ServiceTags_Public_*.json`): `values[].properties.addressPrefixes`
/// with `properties.region`. Option `tags` keeps only tags whose name starts with one of them.
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
        var values: [Value]
    }

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let document = try decodeJSON(Document.self, from: bytes, name: name)
        var data = ImportedData()
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
