import Foundation
import RedirectorCore

/// Turns the config's providers, routes, defaults and trust settings into a ``Policy``.
struct PolicyCompiler {
    let config: Config
    let configName: String
    let baseDirectory: URL
    let providerNames: [String]
    let providerConfigs: [ProviderConfig?]
    let hints: [ProviderHint]
    /// The regions each provider's prefixes name, by provider index (for `nearestRegion`).
    let prefixRegions: [Int32: Set<String>]

    func compile(strings: inout StringTableBuilder) throws -> Policy {
        var pools = try PoolCompiler(config: config.pools, configName: configName, strings: &strings)
        var providers: [Provider] = []
        for (index, name) in providerNames.enumerated() {
            let entry = providerConfigs[index]
            let place = "\(configName): providers[\(name)]"
            let hint = hints.last { $0.provider == name }
            var provider = Provider(name: strings.intern(name), isActive: entry?.active ?? true, priority: entry?.priority ?? 0)
            provider.targets = TargetHosts(
                registry: try pools.target(entry?.registry ?? hint?.registry.map(TargetConfig.url), "\(place).registry", &strings),
                artifacts: try pools.target(entry?.artifacts ?? hint?.artifacts.map(TargetConfig.url), "\(place).artifacts", &strings))
            var regions: [String: TargetsConfig] = entry?.regions ?? [:]
            if let table = entry?.regionTable {
                guard let targetClass = TargetClass.allCases.first(where: { $0.name == table.class }) else {
                    throw ConfigError(place: "\(place).regionTable.class", message: "must be 'registry' or 'artifacts', not '\(table.class)'")
                }
                for (region, url) in try readRegionTable(table.path, place: "\(place).regionTable") {
                    var targets = regions[region] ?? TargetsConfig()
                    // An explicit `regions:` entry wins over the table's row (and gets no pool).
                    guard (targetClass == .registry ? targets.registry : targets.artifacts) == nil else { continue }
                    var target = TargetConfig.url(url)
                    if let health = table.health {
                        let pool = try pools.checked(url, health: health, name: "\(name)/\(region)", "\(place).regionTable", &strings)
                        target = .compiled(pool)
                    }
                    if targetClass == .registry {
                        targets.registry = target
                    } else {
                        targets.artifacts = target
                    }
                    regions[region] = targets
                }
            }
            for region in regions.keys.sorted() {
                let targets = regions[region] ?? TargetsConfig()
                provider.regionTargets.append(RegionTarget(
                    region: strings.intern(region),
                    targets: TargetHosts(registry: try pools.target(targets.registry, "\(place).regions.\(region).registry", &strings),
                                         artifacts: try pools.target(targets.artifacts, "\(place).regions.\(region).artifacts", &strings))))
            }
            if let mode = entry?.nearestRegion, mode != .off {
                provider.regionOrders = try RegionOrdering(
                    regions: regions.keys.sorted(),
                    clientRegions: mode == .always ? prefixRegions[Int32(index)] ?? [] : [],
                    overrides: entry?.regionLocations ?? [:], place: place, onlyRegionsWithTargets: mode == .failover
                ).orders(&strings)
                provider.nearestRegionOnlyOnFailure = mode == .failover
            } else if entry?.regionLocations != nil {
                throw ConfigError(place: "\(place).regionLocations", message: "only used with 'nearestRegion: true' or 'failover'")
            }
            providers.append(provider)
        }

        let defaults = config.defaults
        let defaultStatus = defaults?.status ?? 302
        try checkRedirectStatus(defaultStatus, "\(configName): defaults.status")
        let fallback: FallbackAction
        switch defaults?.unmatched ?? "pass" {
        case "pass":
            fallback = .pass
        case "redirect":
            fallback = .redirect(TargetHosts(
                registry: try pools.target(defaults?.registry, "\(configName): defaults.registry", &strings),
                artifacts: try pools.target(defaults?.artifacts, "\(configName): defaults.artifacts", &strings)))
        case let other:
            throw ConfigError(place: "\(configName): defaults.unmatched", message: "must be 'pass' or 'redirect', not '\(other)'")
        }

        var routes: [Route] = []
        for (index, entry) in (config.routes ?? []).enumerated() {
            let place = "\(configName): routes[\(index)]"
            let methods = try methodFilter(entry, place: place, &strings)
            let clients = try clientFilter(entry, place: place)
            let headers = try headerConditions(entry, place: place, &strings)
            guard !entry.path.values.isEmpty else {  // `path: []` would drop the route silently
                throw ConfigError(place: "\(place).path", message: "names no path pattern")
            }
            for pattern in entry.path.values {
                let path: PathPattern
                do {
                    path = try PathPattern(parsing: pattern, strings: &strings)
                } catch {
                    throw ConfigError(place: "\(place).path", message: "\(error)")
                }
                let action = try routeAction(entry, pattern: path, defaultStatus: defaultStatus, place: place, &strings, &pools)
                routes.append(Route(name: strings.intern(entry.name), methods: methods, path: path, clients: clients,
                                    headers: headers, action: action))
            }
        }

        var trusted: [IPPrefix] = []
        for (index, text) in (config.trustedProxies ?? []).enumerated() {
            guard let prefix = IPPrefix(text) else {
                throw ConfigError(place: "\(configName): trustedProxies[\(index)]", message: "invalid prefix '\(text)'")
            }
            trusted.append(prefix)
        }
        return Policy(providers: providers, routes: routes, fallback: fallback, trustedProxies: trusted, pools: pools.pools,
                      presence: try presenceSettings(config.presence, place: "\(configName): presence"))
    }

    /// The presence settings, each given value checked (a zero cache or concurrency would make
    /// every check fail).
    func presenceSettings(_ config: PresenceConfig?, place: String) throws -> PresenceSettings {
        var settings = PresenceSettings.default
        guard let config else { return settings }
        if let text = config.timeout { settings.timeoutMilliseconds = try ConfigDuration.milliseconds(text, "\(place).timeout") }
        if let text = config.presentTTL {
            settings.presentTTLMilliseconds = try ConfigDuration.milliseconds(text, "\(place).presentTTL")
        }
        if let text = config.absentTTL {
            settings.absentTTLMilliseconds = text == "0" ? 0 : try ConfigDuration.milliseconds(text, "\(place).absentTTL")
        }
        if let entries = config.cacheEntries {
            guard (1...PresenceSettings.cacheLimit).contains(entries) else {
                throw ConfigError(place: "\(place).cacheEntries", message: "must be between 1 and \(PresenceSettings.cacheLimit)")
            }
            settings.cacheEntries = entries
        }
        if let limit = config.concurrencyPerMirror {
            guard limit > 0 else { throw ConfigError(place: "\(place).concurrencyPerMirror", message: "must be at least 1") }
            settings.concurrencyPerMirror = limit
        }
        if let checks = config.maxChecks {
            guard (1...PresenceSettings.checkLimit).contains(checks) else {
                throw ConfigError(place: "\(place).maxChecks", message: "must be between 1 and \(PresenceSettings.checkLimit)")
            }
            settings.maxChecks = checks
        }
        return settings
    }

    /// The route's header conditions, names lower-cased.
    func headerConditions(_ entry: RouteConfig, place: String, _ strings: inout StringTableBuilder) throws -> [HeaderCondition] {
        var conditions: [HeaderCondition] = []
        for name in (entry.headers ?? [:]).keys.sorted() {
            let here = "\(place).headers.\(name)"
            guard OutputSyntax.isToken(name.utf8), let condition = entry.headers?[name] else {
                throw ConfigError(place: here, message: "'\(name)' is not a header name")
            }
            let lowered = strings.intern(name.lowercased())
            switch (condition.present, condition.exact, condition.prefix) {
            case (true?, nil, nil):
                conditions.append(HeaderCondition(name: lowered, match: .present))
            case (nil, let value?, nil) where OutputSyntax.isFieldValue(value.utf8):
                conditions.append(HeaderCondition(name: lowered, match: .exact(strings.intern(value))))
            case (nil, nil, let value?) where OutputSyntax.isFieldValue(value.utf8) && !value.isEmpty:
                conditions.append(HeaderCondition(name: lowered, match: .prefix(strings.intern(value))))
            default:
                throw ConfigError(place: here, message: "set exactly one of 'present: true', 'exact: VALUE', 'prefix: VALUE' (a non-empty value without control characters)")
            }
        }
        return conditions
    }

    func checkRedirectStatus(_ status: Int32, _ place: String) throws {
        guard [301, 302, 303, 307, 308].contains(status) else {
            throw ConfigError(place: place, message: "redirect status must be 301, 302, 303, 307 or 308, not \(status)")
        }
    }

    func methodFilter(_ entry: RouteConfig, place: String, _ strings: inout StringTableBuilder) throws -> MethodFilter {
        if let except = entry.exceptMethods {
            guard entry.methods == nil else {
                throw ConfigError(place: place, message: "set either 'methods' or 'exceptMethods', not both")
            }
            return MethodFilter(methods: try except.map { try method($0, place, &strings) }, isNegated: true)
        }
        let methods = entry.methods ?? ["GET", "HEAD"]
        if methods == ["*"] { return MethodFilter(methods: [], isNegated: true) }
        return MethodFilter(methods: try methods.map { try method($0, place, &strings) })
    }

    func method(_ text: String, _ place: String, _ strings: inout StringTableBuilder) throws -> StringRef {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x41...0x5a).contains($0) || $0 == UInt8(ascii: "-") }) else {
            throw ConfigError(place: "\(place).methods", message: "'\(text)' is not an upper-case method name")
        }
        return strings.intern(text)
    }

    func clientFilter(_ entry: RouteConfig, place: String) throws -> ClientFilter {
        func indices(_ names: [String], _ key: String) throws -> [Int32] {
            try names.map { name in
                guard let index = providerNames.firstIndex(of: name) else {
                    throw ConfigError(place: "\(place).\(key)", message: "unknown provider '\(name)'")
                }
                return Int32(index)
            }
        }
        let set = [entry.clients != nil, entry.providers != nil, entry.exceptProviders != nil].filter { $0 }.count
        guard set <= 1 else {
            throw ConfigError(place: place, message: "set only one of 'clients', 'providers', 'exceptProviders'")
        }
        if let names = entry.providers { return .providers(try indices(names, "providers")) }
        if let names = entry.exceptProviders { return .exceptProviders(try indices(names, "exceptProviders")) }
        switch entry.clients ?? "any" {
        case "any": return .any
        case "matched": return .matched
        case "unmatched": return .unmatched
        case let other:
            throw ConfigError(place: "\(place).clients", message: "must be 'any', 'matched' or 'unmatched', not '\(other)'")
        }
    }

    func routeAction(_ entry: RouteConfig, pattern: PathPattern, defaultStatus: Int32, place: String,
                     _ strings: inout StringTableBuilder, _ pools: inout PoolCompiler) throws -> RouteAction {
        let actions = [entry.redirect != nil, entry.respond != nil, entry.pass == true].filter { $0 }.count
        guard actions == 1 else {
            throw ConfigError(place: place, message: "set exactly one of 'redirect', 'respond', 'pass: true'")
        }
        if entry.pass == true { return .pass }
        if let respond = entry.respond {
            guard (100...599).contains(respond.status), !(300...399).contains(respond.status) else {
                throw ConfigError(place: "\(place).respond.status", message: "must be 100–599 and not a redirect (use 'redirect'), not \(respond.status)")
            }
            var headers: [Header] = []
            for name in (respond.headers ?? [:]).keys.sorted() {
                let value = respond.headers?[name] ?? ""
                guard OutputSyntax.isToken(name.utf8), OutputSyntax.isFieldValue(value.utf8) else {
                    throw ConfigError(place: "\(place).respond.headers", message: "invalid header '\(name): \(value)'")
                }
                headers.append(Header(name: strings.intern(name), value: strings.intern(value)))
            }
            return .respond(status: respond.status, headers: headers)
        }
        guard let redirect = entry.redirect else { return .pass }
        let status = redirect.status ?? defaultStatus
        try checkRedirectStatus(status, "\(place).redirect.status")
        let target: RedirectTarget
        switch redirect.to {
        case .url(let name) where name == "registry" || name == "artifacts":
            let targetClass: TargetClass = name == "registry" ? .registry : .artifacts
            var fixed: Int32?
            if let name = redirect.provider {
                guard let index = providerNames.firstIndex(of: name) else {
                    throw ConfigError(place: "\(place).redirect.provider", message: "unknown provider '\(name)'")
                }
                fixed = Int32(index)
            }
            target = .provider(targetClass, provider: fixed)
        default:
            guard redirect.provider == nil else {
                throw ConfigError(place: "\(place).redirect.provider", message: "only applies with 'to: registry' or 'to: artifacts'")
            }
            let pool = try pools.target(redirect.to, "\(place).redirect.to", &strings)
            guard !pool.isEmpty else { throw ConfigError(place: "\(place).redirect.to", message: "names no target") }
            target = .pool(pool)
        }
        var template: [TemplatePart] = []
        if let rewrite = redirect.rewrite {
            template = try parseTemplate(rewrite, pattern: pattern, place: "\(place).redirect.rewrite", &strings)
        }
        var hashKey = HashKey.path
        if let key = redirect.hashOn, key != "{path}" {
            guard key.hasPrefix("{"), key.hasSuffix("}"),
                  let index = pattern.captureNames.firstIndex(of: String(key.dropFirst().dropLast())) else {
                throw ConfigError(place: "\(place).redirect.hashOn", message: "'\(key)' is not {path} or a capture of the path pattern (\(pattern.captureNames.map { "{\($0)}" }.joined(separator: ", ")))")
            }
            hashKey = .capture(index)
        }
        return .redirect(status: status, target: target, path: template, keepQuery: redirect.keepQuery ?? true, hashKey: hashKey,
                         verify: redirect.verify ?? false)
    }

    /// `{name}` refers to a capture of the pattern, `{path}` to the whole request path.
    /// The empty template drops the path (a redirect to the target URL itself).
    func parseTemplate(_ text: String, pattern: PathPattern, place: String, _ strings: inout StringTableBuilder) throws -> [TemplatePart] {
        if text.isEmpty { return [.literal(.empty)] }
        guard text.hasPrefix("/") || text.hasPrefix("{") else {
            throw ConfigError(place: place, message: "'\(text)' must start with '/' or a capture")
        }
        var parts: [TemplatePart] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            if open > rest.startIndex { parts.append(.literal(strings.intern(String(rest[..<open])))) }
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw ConfigError(place: place, message: "'\(text)' has an unclosed '{'")
            }
            let name = String(rest[rest.index(after: open)..<close])
            if name == "path" {
                parts.append(.path)
            } else if let index = pattern.captureNames.firstIndex(of: name) {
                parts.append(.capture(index))
            } else {
                throw ConfigError(place: place, message: "'\(text)' uses '{\(name)}', which the path pattern does not capture")
            }
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.literal(strings.intern(String(rest)))) }
        // A capture other than {path} does not start with '/': `https://mirror.example` + `{x}`
        // with x = "@evil.example" would name another host (an open redirect).
        if case .capture(let index)? = parts.first {
            throw ConfigError(place: place, message: "'\(text)' starts with the capture '{\(pattern.captureNames[index])}', which does not start with '/' and could continue the target's host name; start the rewrite with '/' or {path}")
        }
        guard OutputSyntax.isPathText(text.utf8) else {
            throw ConfigError(place: place, message: "'\(text)' contains spaces or control characters")
        }
        return parts
    }

    /// Reads `region,url` lines; `#` lines are comments. The first other line is a header unless it
    /// is a row whose second column is a URL, a dotted host or `host:port` (`region,url` and
    /// `aws_region,blob_base_url` are headers: `url` is a valid host name, so validity alone cannot
    /// tell). A `<default>` row (archeio's marker for its fallback URL) is skipped: the provider's
    /// own target is the fallback.
    func readRegionTable(_ path: String, place: String) throws -> [(String, String)] {
        let url = URL(fileURLWithPath: path, relativeTo: baseDirectory).standardizedFileURL
        let bytes: [UInt8]
        do {
            bytes = try SourceFile.read(url.path)
        } catch {
            throw ConfigError(place: place, message: "\(error)")
        }
        var rows: [(String, String)] = []
        var isFirst = true
        try forEachLine(bytes) { number, line in
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let region = fields.first, !region.isEmpty, !region.hasPrefix("#") else { return }
            defer { isFirst = false }
            guard region != "<default>" else { return }
            let isRow = fields.count == 2 && RedirectTargetURL.normalize(fields[1]) != nil
                && fields[1].contains(where: { $0 == "." || $0 == ":" })
            if isFirst && !isRow { return }
            guard fields.count == 2, RedirectTargetURL.normalize(fields[1]) != nil else {
                throw ConfigError(place: "\(url.path):\(number)", message: "expected 'region,url', got '\(line)'")
            }
            rows.append((fields[0], fields[1]))
        }
        return rows
    }
}

/// Validation of configured redirect targets: they are the only hosts a Location can name.
enum RedirectTargetURL {
    /// The target a Location starts with, for a bare host (`https://` is prepended) or an http(s)
    /// URL; nil when not acceptable. The URL is used byte for byte as written (only the scheme,
    /// which is case-insensitive, is lower-cased): host case, base path and a trailing `/` stay.
    static func normalize(_ text: String) -> String? {
        var rest = Substring(text)
        var scheme = "https"
        if let range = rest.range(of: "://") {
            scheme = rest[..<range.lowerBound].lowercased()
            guard scheme == "https" || scheme == "http" else { return nil }
            rest = rest[range.upperBound...]
        }
        let hostEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<hostEnd]
        let path = rest[hostEnd...]
        let hostPart = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let host = hostPart.first, !host.isEmpty, host.count <= 253,
              host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }),
              !host.hasPrefix("."), !host.hasPrefix("-") else { return nil }
        if hostPart.count == 2 {
            // Digits only: Int("+80") would parse, and "https://h:+80" is no URL.
            guard hostPart[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let port = Int(hostPart[1]),
                  (1...65535).contains(port) else { return nil }
        }
        guard path.utf8.allSatisfy(ByteClass.isTargetPathByte) else { return nil }
        return "\(scheme)://\(authority)\(path)"
    }
}
