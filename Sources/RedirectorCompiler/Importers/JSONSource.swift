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
