import Foundation
import Yams

/// The YAML configuration `redirector compile` reads. See README.md, "Configuration".
public struct Config: Decodable, Sendable {
    /// Format version of the config file; 1 when absent.
    public var version: Int?
    /// Providers in priority-tie order.
    public var providers: [ProviderConfig]?
    /// Sources that name their providers themselves (k8s-asns files or directories, CSV with a provider column).
    public var sources: [SourceConfig]?
    /// Prefix → ASN sources (pyasn dumps); ASN-based providers take their prefixes from here.
    public var asnTable: [SourceConfig]?
    /// Keep ASN-table prefixes of no provider so decisions can still explain the ASN (default true).
    public var keepUnassignedPrefixes: Bool?
    /// Routes, tried in order.
    public var routes: [RouteConfig]?
    /// Defaults: status and the fallback for redirects without a target.
    public var defaults: DefaultsConfig?
    /// Trusted proxy prefixes for the sidecar's client address resolution.
    public var trustedProxies: [String]?

    /// Loads and decodes a config file.
    public static func load(path: String) throws -> Config {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(place: path, message: "cannot read the file")
        }
        return try parse(String(decoding: data, as: UTF8.self), name: path)
    }

    /// Decodes config text; errors name `name` as the file.
    public static func parse(_ text: String, name path: String) throws -> Config {
        do {
            if let root = try Yams.compose(yaml: text) {
                try ConfigSchema.config.check(root, file: path, place: "")
            }
            return try YAMLDecoder().decode(Config.self, from: text)
        } catch let error as ConfigError {
            throw error
        } catch let error as DecodingError {
            throw ConfigError(decoding: error, file: path)
        } catch {
            throw ConfigError(place: path, message: "not valid YAML: \(error)")
        }
    }
}

/// A provider entry.
public struct ProviderConfig: Decodable, Sendable {
    /// Unique name.
    public var name: String
    /// Whether it gets redirects (default true).
    public var active: Bool?
    /// Wins prefixes claimed by several providers (default 0).
    public var priority: Int32?
    /// Registry target: a host name or an http(s) base URL.
    public var registry: String?
    /// Artifacts target.
    public var artifacts: String?
    /// Region-specific targets.
    public var regions: [String: TargetsConfig]?
    /// A CSV `region,url` table giving one class's region-specific targets.
    public var regionTable: RegionTableConfig?
    /// The provider's own sources (their prefixes belong to it).
    public var sources: [SourceConfig]?
}

/// A pair of targets.
public struct TargetsConfig: Decodable, Sendable {
    /// Registry target.
    public var registry: String?
    /// Artifacts target.
    public var artifacts: String?
}

/// A CSV region table (`region,url` lines, header allowed), e.g. `aws-region-to-s3-bucket.csv`.
public struct RegionTableConfig: Decodable, Sendable {
    /// Path, relative to the config file.
    public var path: String
    /// Which class the URLs are for.
    public var `class`: String
}

/// A data source.
public struct SourceConfig: Decodable, Sendable {
    /// Importer name (`redirector formats` lists them).
    public var format: String
    /// File (or, for `k8s-asns`, directory of *.yaml), relative to the config file.
    public var path: String
    /// Keep only these services.
    public var services: [String]?
    /// Keep only these tag name prefixes (Azure).
    public var tags: [String]?
    /// Region for all its prefixes.
    public var region: String?
}

/// A route.
public struct RouteConfig: Decodable, Sendable {
    /// Name in explanations and metrics.
    public var name: String
    /// One path pattern or a list of them (each becomes a route).
    public var path: OneOrMany
    /// Methods (default `[GET, HEAD]`); `["*"]` for any.
    public var methods: [String]?
    /// Instead of `methods`: every method except these.
    public var exceptMethods: [String]?
    /// `any` (default), `matched` or `unmatched`.
    public var clients: String?
    /// Only clients of these providers.
    public var providers: [String]?
    /// Only clients not of these providers.
    public var exceptProviders: [String]?
    /// Redirect action.
    public var redirect: RedirectConfig?
    /// Fixed-answer action.
    public var respond: RespondConfig?
    /// Pass action (`pass: true`).
    public var pass: Bool?
}

/// A string or a list of strings.
public struct OneOrMany: Decodable, Sendable {
    /// The values.
    public var values: [String]

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) {
            values = [one]
        } else {
            values = try container.decode([String].self)
        }
    }
}

/// A redirect action.
public struct RedirectConfig: Decodable, Sendable {
    /// `registry`, `artifacts`, or a base URL.
    public var to: String
    /// For `registry`/`artifacts`: always this provider's target instead of the client's provider's.
    public var provider: String?
    /// 301, 302, 303, 307 or 308 (default: `defaults.status`, else 302).
    public var status: Int32?
    /// Path template with `{capture}` names and `{path}`; default: the request path.
    public var rewrite: String?
    /// Append the request's query string (default true).
    public var keepQuery: Bool?
}

/// A fixed answer.
public struct RespondConfig: Decodable, Sendable {
    /// HTTP status.
    public var status: Int32
    /// Extra headers.
    public var headers: [String: String]?
}

/// Defaults.
public struct DefaultsConfig: Decodable, Sendable {
    /// Redirect status when a route sets none (default 302).
    public var status: Int32?
    /// `pass` (default) or `redirect`: what a redirect does when the provider has no target.
    public var unmatched: String?
    /// Fallback registry target for `unmatched: redirect`.
    public var registry: String?
    /// Fallback artifacts target for `unmatched: redirect`.
    public var artifacts: String?
}

/// A config problem, naming the file and the place in it.
public struct ConfigError: Error, CustomStringConvertible {
    /// `file: routes[2].redirect`.
    public var place: String
    /// What is wrong.
    public var message: String

    /// "place: message".
    public var description: String { "\(place): \(message)" }

    /// Creates an error.
    public init(place: String, message: String) {
        self.place = place
        self.message = message
    }

    /// Translates a decoding error into the key path it happened at.
    init(decoding error: DecodingError, file: String) {
        func path(_ keys: [any CodingKey]) -> String {
            let place = keys.reduce("") { text, key in
                if let index = key.intValue { return "\(text)[\(index)]" }
                return text.isEmpty ? key.stringValue : "\(text).\(key.stringValue)"
            }
            return place.isEmpty ? file : "\(file): \(place)"
        }
        switch error {
        case .keyNotFound(let key, let context):
            self.init(place: path(context.codingPath), message: "missing key '\(key.stringValue)'")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            self.init(place: path(context.codingPath), message: context.debugDescription)
        case .dataCorrupted(let context):
            let underlying = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            self.init(place: path(context.codingPath), message: underlying)
        @unknown default:
            self.init(place: file, message: "\(error)")
        }
    }
}

/// The keys each mapping of the config may hold, so a misspelt key is an error, not silently ignored.
indirect enum ConfigSchema: Sendable {
    /// A mapping with these keys (nil schema: any value).
    case mapping([String: ConfigSchema?])
    /// A list of elements.
    case list(ConfigSchema)
    /// A mapping from free-form names to values.
    case dictionary(ConfigSchema)

    static let targets = ConfigSchema.mapping(["registry": nil, "artifacts": nil])
    static let source = ConfigSchema.mapping(["format": nil, "path": nil, "services": nil, "tags": nil, "region": nil])
    static let config = ConfigSchema.mapping([
        "version": nil, "keepUnassignedPrefixes": nil, "trustedProxies": nil,
        "providers": .list(.mapping([
            "name": nil, "active": nil, "priority": nil, "registry": nil, "artifacts": nil,
            "regions": .dictionary(targets), "regionTable": .mapping(["path": nil, "class": nil]), "sources": .list(source),
        ])),
        "sources": .list(source),
        "asnTable": .list(source),
        "routes": .list(.mapping([
            "name": nil, "path": nil, "methods": nil, "exceptMethods": nil, "clients": nil, "providers": nil,
            "exceptProviders": nil, "pass": nil,
            "redirect": .mapping(["to": nil, "provider": nil, "status": nil, "rewrite": nil, "keepQuery": nil]),
            "respond": .mapping(["status": nil, "headers": nil]),
        ])),
        "defaults": .mapping(["status": nil, "unmatched": nil, "registry": nil, "artifacts": nil]),
    ])

    /// Throws for the first key the schema does not know, naming file, line and place.
    func check(_ node: Node, file: String, place: String) throws {
        switch self {
        case .mapping(let keys):
            guard let mapping = node.mapping else { return }
            for (key, value) in mapping {
                let name = key.string ?? "?"
                let here = place.isEmpty ? name : "\(place).\(name)"
                guard let schema = keys[name] else {
                    let line = key.mark.map { ":\($0.line)" } ?? ""
                    throw ConfigError(place: "\(file)\(line): \(here)", message: "unknown key '\(name)' (known: \(keys.keys.sorted().joined(separator: ", ")))")
                }
                try schema?.check(value, file: file, place: here)
            }
        case .list(let element):
            for (index, item) in (node.sequence.map(Array.init) ?? []).enumerated() {
                try element.check(item, file: file, place: "\(place)[\(index)]")
            }
        case .dictionary(let value):
            for (key, item) in node.mapping ?? [:] {
                try value.check(item, file: file, place: "\(place).\(key.string ?? "?")")
            }
        }
    }
}
