import Foundation
import RedirectorCore
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
    /// Named pools of mirrors, which targets can name with `{pool: NAME}`.
    public var pools: [String: PoolConfig]?
    /// How `verify` routes check that a mirror holds an object.
    public var presence: PresenceConfig?

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
    /// Registry target: a host name, an http(s) base URL or `{pool: NAME}`.
    public var registry: TargetConfig?
    /// Artifacts target.
    public var artifacts: TargetConfig?
    /// Region-specific targets.
    public var regions: [String: TargetsConfig]?
    /// A CSV `region,url` table giving one class's region-specific targets.
    public var regionTable: RegionTableConfig?
    /// The provider's own sources (their prefixes belong to it).
    public var sources: [SourceConfig]?
    /// The `nearest-region` step: `true` (a client whose region has no pool, or none up, goes to
    /// the nearest region with one up), `failover` (only when its region's pool is down), `false`.
    public var nearestRegion: NearestRegionConfig?
    /// Region locations that replace or add to the built-in table (`redirector regions`).
    public var regionLocations: [String: LocationConfig]?
}

/// A pair of targets.
public struct TargetsConfig: Decodable, Sendable {
    /// Registry target.
    public var registry: TargetConfig?
    /// Artifacts target.
    public var artifacts: TargetConfig?
}

/// A target: one URL (or bare host), or the name of a pool.
public enum TargetConfig: Decodable, Sendable {
    /// A host name or an http(s) base URL.
    case url(String)
    /// `{pool: NAME}`: a pool of ``Config/pools``.
    case pool(String)
    /// A pool the compiler made itself (a region table's row with a health check); never read from YAML.
    case compiled(PoolRef)

    private enum Keys: String, CodingKey { case pool }

    public init(from decoder: any Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            self = .url(text)
        } else {
            self = .pool(try decoder.container(keyedBy: Keys.self).decode(String.self, forKey: .pool))
        }
    }
}

/// A point on the globe.
public struct LocationConfig: Decodable, Sendable {
    /// Degrees north, -90…90.
    public var latitude: Double
    /// Degrees east, -180…180.
    public var longitude: Double
}

/// A pool of mirrors.
public struct PoolConfig: Decodable, Sendable {
    /// Its members.
    public var members: [MemberConfig]
    /// Health check for members that set none.
    public var health: HealthCheckConfig?
    /// When no member is up: `pass`, another pool's name, or (absent) the next step of the chain.
    public var fallback: String?
}

/// A pool member.
public struct MemberConfig: Decodable, Sendable {
    /// Host name or http(s) base URL.
    public var url: String
    /// Share among members of equal priority (default 1).
    public var weight: UInt32?
    /// Lower is preferred (default 0).
    public var priority: Int32?
    /// Its health check (default: the pool's), or `false` for none.
    public var health: MemberHealthConfig?
}

/// A member's `health`: a check, or `false` for none.
public enum MemberHealthConfig: Decodable, Sendable {
    /// No health check: always up.
    case disabled
    /// This check.
    case check(HealthCheckConfig)

    public init(from decoder: any Decoder) throws {
        if let flag = try? decoder.singleValueContainer().decode(Bool.self) {
            guard !flag else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "`health: true` means nothing; give a check or `false`"))
            }
            self = .disabled
        } else {
            self = .check(try HealthCheckConfig(from: decoder))
        }
    }
}

/// An HTTP health check.
public struct HealthCheckConfig: Decodable, Sendable {
    /// Path below the member's URL, or an absolute http(s) URL (default `/`).
    public var path: String?
    /// `GET` or `HEAD` (default `HEAD`).
    public var method: String?
    /// Between probes, e.g. `10s`, `500ms` (default 10s).
    public var interval: String?
    /// Per probe (default 2s).
    public var timeout: String?
    /// Successes that bring a member up (default 2).
    public var rise: UInt8?
    /// Failures that take a member down (default 3).
    public var fall: UInt8?
    /// Statuses that count as up (default 200–399).
    public var expect: [UInt16]?
}

/// A CSV region table (`region,url` lines, header allowed), e.g. `aws-region-to-s3-bucket.csv`.
public struct RegionTableConfig: Decodable, Sendable {
    /// Path, relative to the config file.
    public var path: String
    /// Which class the URLs are for.
    public var `class`: String
    /// A health check for every URL of the table (each becomes a pool `<provider>/<region>`).
    public var health: HealthCheckConfig?
}

/// When the `nearest-region` step applies.
public enum NearestRegionConfig: String, Decodable, Sendable {
    /// Never.
    case off
    /// For clients whose region has no pool for the class, or none of whose members is up.
    case always
    /// Only for clients whose region's pool is down (regions without a pool keep the provider's target).
    case failover

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) {
            self = flag ? .always : .off
        } else if try container.decode(String.self) == "failover" {
            self = .failover
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "must be true, false or 'failover'"))
        }
    }
}

/// A data source.
public struct SourceConfig: Decodable, Sendable {
    /// Importer name (`redirector formats` lists them).
    public var format: String
    /// File (or, for `k8s-asns`, directory of *.yaml), relative to the config file. With `url`
    /// too, the offline copy `compile` reads while `update`'s cache has none (docs/updating.md).
    public var path: String?
    /// An http(s) URL `redirector update` fetches the file from into its cache.
    public var url: String?
    /// Keep only these services.
    public var services: [String]?
    /// Keep only these tag name prefixes (Azure).
    public var tags: [String]?
    /// Region for all its prefixes.
    public var region: String?
    /// Keep only networks of these AS numbers (`location-db` as a provider source).
    public var asns: [UInt32]?
    /// Keep only networks in these ISO 3166 country codes (`location-db` as a provider source).
    public var countries: [String]?
    /// The source read instead when `path` does not exist, e.g. a table shipped with the config
    /// when an optional system database (Debian's location.db) is not installed.
    public var otherwise: SourceFallback?
}

/// A source's `otherwise:` (a class, as a struct cannot hold a value of its own type).
public final class SourceFallback: Decodable, Sendable {
    /// The source read instead.
    public let source: SourceConfig

    /// Decodes the fallback's mapping as a source.
    public init(from decoder: any Decoder) throws {
        source = try SourceConfig(from: decoder)
    }
}

extension SourceConfig {
    /// `url`, checked to be an absolute http or https URL with a host; nil when the source has none.
    /// Errors name `place` (the source entry).
    public func checkedURL(place: String) throws -> String? {
        guard let url else { return nil }
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty else {
            throw ConfigError(place: "\(place).url", message: "'\(url)' is not an http or https URL")
        }
        return url
    }
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
    /// Request headers the route requires: name → `{present: true}`, `{exact: V}` or `{prefix: V}`.
    public var headers: [String: HeaderConditionConfig]?
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

/// A header condition: exactly one of its keys.
public struct HeaderConditionConfig: Decodable, Sendable {
    /// `true`: the header is present.
    public var present: Bool?
    /// The value equals this.
    public var exact: String?
    /// The value starts with this.
    public var prefix: String?
}

/// A redirect action.
public struct RedirectConfig: Decodable, Sendable {
    /// `registry`, `artifacts`, a base URL, or `{pool: NAME}`.
    public var to: TargetConfig
    /// What the rendezvous hash of a pool's members uses: `{path}` (default) or a capture `{name}`.
    public var hashOn: String?
    /// For `registry`/`artifacts`: always this provider's target instead of the client's provider's.
    public var provider: String?
    /// 301, 302, 303, 307 or 308 (default: `defaults.status`, else 302).
    public var status: Int32?
    /// Path template with `{capture}` names and `{path}`; default: the request path.
    public var rewrite: String?
    /// Append the request's query string (default true).
    public var keepQuery: Bool?
    /// Redirect only to a member that a HEAD of the `Location` found holding the object (default false).
    public var verify: Bool?
}

/// Presence checks of `verify` routes (defaults: ``PresenceSettings/default``).
public struct PresenceConfig: Decodable, Sendable {
    /// Per check, e.g. `5s`.
    public var timeout: String?
    /// How long a found object is remembered, e.g. `1h`.
    public var presentTTL: String?
    /// How long a missing object is remembered, e.g. `1m`; `0` remembers none.
    public var absentTTL: String?
    /// Most answers remembered.
    public var cacheEntries: UInt32?
    /// Most checks in flight to one mirror.
    public var concurrencyPerMirror: UInt32?
    /// Most checks per request (1–16) before the routes after the verifying ones decide.
    public var maxChecks: UInt32?
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
    public var registry: TargetConfig?
    /// Fallback artifacts target for `unmatched: redirect`.
    public var artifacts: TargetConfig?
}

/// A config problem, naming the file and the place in it.
public struct ConfigError: Error, CustomStringConvertible {
    /// `file: routes[2].redirect`.
    public var place: String
    /// What is wrong.
    public var message: String
    /// The source whose contents are wrong (its URL when it has one, else the file), when the
    /// problem is a source's format rather than the config's.
    public var source: String?

    /// "place: message".
    public var description: String { "\(place): \(message)" }

    /// Creates an error.
    public init(place: String, message: String, source: String? = nil) {
        self.place = place
        self.message = message
        self.source = source
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

    static let target = ConfigSchema.mapping(["pool": nil])
    static let targets = ConfigSchema.mapping(["registry": target, "artifacts": target])
    static let healthCheck = ConfigSchema.mapping(["path": nil, "method": nil, "interval": nil, "timeout": nil, "rise": nil,
                                                   "fall": nil, "expect": nil])
    static let sourceKeys: [String: ConfigSchema?] = ["format": nil, "path": nil, "url": nil, "services": nil, "tags": nil, "region": nil,
                                                      "asns": nil, "countries": nil]
    /// A source, whose `otherwise:` is a source without one (one level of fallback).
    static let source = ConfigSchema.mapping(sourceKeys.merging(["otherwise": .mapping(sourceKeys)]) { $1 })
    static let config = ConfigSchema.mapping([
        "version": nil, "keepUnassignedPrefixes": nil, "trustedProxies": nil,
        "presence": .mapping(["timeout": nil, "presentTTL": nil, "absentTTL": nil, "cacheEntries": nil, "concurrencyPerMirror": nil, "maxChecks": nil]),
        "pools": .dictionary(.mapping([
            "members": .list(.mapping(["url": nil, "weight": nil, "priority": nil, "health": healthCheck])),
            "health": healthCheck, "fallback": nil,
        ])),
        "providers": .list(.mapping([
            "name": nil, "active": nil, "priority": nil, "registry": target, "artifacts": target,
            "regions": .dictionary(targets), "regionTable": .mapping(["path": nil, "class": nil, "health": healthCheck]), "sources": .list(source),
            "nearestRegion": nil, "regionLocations": .dictionary(.mapping(["latitude": nil, "longitude": nil])),
        ])),
        "sources": .list(source),
        "asnTable": .list(source),
        "routes": .list(.mapping([
            "name": nil, "path": nil, "methods": nil, "exceptMethods": nil, "clients": nil, "providers": nil,
            "exceptProviders": nil, "pass": nil,
            "headers": .dictionary(.mapping(["present": nil, "exact": nil, "prefix": nil])),
            "redirect": .mapping(["to": target, "provider": nil, "status": nil, "rewrite": nil, "keepQuery": nil, "hashOn": nil, "verify": nil]),
            "respond": .mapping(["status": nil, "headers": nil]),
        ])),
        "defaults": .mapping(["status": nil, "unmatched": nil, "registry": target, "artifacts": target]),
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
