import RedirectorCore

/// Builds the policy's pools: the named pools of the config, and one pool per distinct URL that
/// a target names directly (so one mirror written in several places is one member, one slot).
struct PoolCompiler {
    private var list = PoolListBuilder()
    private var named: [String: PoolRef] = [:]
    private let configName: String

    /// The pools compiled so far.
    var pools: [Pool] { list.pools }

    /// Compiles the config's named pools (fallbacks by name, checked for cycles).
    init(config: [String: PoolConfig]?, configName: String, strings: inout StringTableBuilder) throws {
        self.configName = configName
        let entries = (config ?? [:]).sorted { $0.key < $1.key }
        for (offset, entry) in entries.enumerated() { named[entry.key] = PoolRef(index: offset) }
        for (name, entry) in entries {
            let place = "\(configName): pools.\(name)"
            // Names reach response headers ($redirector_pool) and the `url(pool):reason` text.
            guard OutputSyntax.isToken(name.utf8) else {
                throw ConfigError(place: place, message: "'\(name)' is not a pool name (letters, digits and -._~!#$%&'*+^`| only)")
            }
            guard !entry.members.isEmpty else { throw ConfigError(place: "\(place).members", message: "a pool needs at least one member") }
            var members: [PoolMember] = []
            var seen: Set<String> = []
            for (index, member) in entry.members.enumerated() {
                let memberPlace = "\(place).members[\(index)]"
                let url = try Self.url(member.url, "\(memberPlace).url")
                guard seen.insert(url).inserted else { throw ConfigError(place: "\(memberPlace).url", message: "'\(url)' is listed twice") }
                let weight = member.weight ?? 1
                guard weight >= 1 else { throw ConfigError(place: "\(memberPlace).weight", message: "must be at least 1") }
                var check: HealthCheck?
                switch member.health {
                case .disabled?: check = nil
                case .check(let config)?: check = try Self.healthCheck(config, memberURL: url, "\(memberPlace).health", &strings)
                case nil: check = try entry.health.map { try Self.healthCheck($0, memberURL: url, "\(place).health", &strings) }
                }
                let seed = Array(url.utf8).withUnsafeBytes { PoolMember.seed(url: $0) }
                members.append(PoolMember(url: strings.intern(url), weight: weight, priority: member.priority ?? 0, seed: seed,
                                          slot: 0, health: check))
            }
            let fallback: PoolFallback
            switch entry.fallback {
            case nil: fallback = .chain
            case "pass"?: fallback = .pass
            case let other?:
                guard let next = named[other], other != name else {
                    throw ConfigError(place: "\(place).fallback", message: "'\(other)' is not 'pass' or the name of another pool")
                }
                fallback = .pool(next)
            }
            _ = list.add(Pool(name: strings.intern(name), members: members, fallback: fallback))
        }
        for (name, _) in entries { try checkAcyclic(from: name) }
    }

    /// Rejects a chain of pool fallbacks that comes back to `name`.
    private func checkAcyclic(from name: String) throws {
        guard let start = named[name] else { return }
        var visited: [PoolRef] = [start]
        var current = start
        while let index = current.index, case .pool(let next) = pools[index].fallback {
            guard !visited.contains(next) else {
                let names = (visited + [next]).compactMap { reference in named.first { $0.value == reference }?.key }
                throw ConfigError(place: "\(configName): pools.\(name).fallback", message: "fallbacks form a cycle: \(names.joined(separator: " → "))")
            }
            visited.append(next)
            current = next
        }
    }

    /// The pool of a target: a named pool, or the one-member pool of a URL; none when absent.
    mutating func target(_ config: TargetConfig?, _ place: String, _ strings: inout StringTableBuilder) throws -> PoolRef {
        switch config {
        case nil:
            return .none
        case .compiled(let reference)?:
            return reference
        case .pool(let name)?:
            guard let reference = named[name] else {
                let known = named.keys.sorted().joined(separator: ", ")
                throw ConfigError(place: place, message: "unknown pool '\(name)'" + (known.isEmpty ? " (no pools are defined)" : " (known: \(known))"))
            }
            return reference
        case .url(let text)?:
            guard !text.isEmpty else { return .none }
            return list.single(try Self.url(text, place), strings: &strings)
        }
    }

    /// A pool named `name` of the one member `text` checked by `health` (a region table's row).
    mutating func checked(_ text: String, health: HealthCheckConfig, name: String, _ place: String,
                          _ strings: inout StringTableBuilder) throws -> PoolRef {
        guard OutputSyntax.isPoolName(name.utf8) else {
            throw ConfigError(place: place, message: "the pool of region row '\(name)' needs a provider and region name of token characters")
        }
        let url = try Self.url(text, place)
        let check = try Self.healthCheck(health, memberURL: url, "\(place).health", &strings)
        let seed = Array(url.utf8).withUnsafeBytes { PoolMember.seed(url: $0) }
        return list.add(Pool(name: strings.intern(name),
                             members: [PoolMember(url: strings.intern(url), seed: seed, slot: 0, health: check)]))
    }

    /// Validates a target URL (`https://` added to bare hosts).
    static func url(_ text: String, _ place: String) throws -> String {
        guard let url = RedirectTargetURL.normalize(text) else {
            throw ConfigError(place: place, message: "'\(text)' is not a host name or an http(s) URL without query, fragment or credentials")
        }
        return url
    }

    /// Compiles a health check of the member at `memberURL`.
    static func healthCheck(_ config: HealthCheckConfig, memberURL: String, _ place: String,
                            _ strings: inout StringTableBuilder) throws -> HealthCheck {
        let path = config.path ?? "/"
        let probe: String
        if path.hasPrefix("/") {
            probe = (memberURL.hasSuffix("/") ? String(memberURL.dropLast()) : memberURL) + path
            guard OutputSyntax.isPathText(path.utf8) else {
                throw ConfigError(place: "\(place).path", message: "'\(path)' contains spaces or control characters")
            }
        } else {
            probe = try url(path, "\(place).path")
        }
        let method = config.method ?? "HEAD"
        guard method == "GET" || method == "HEAD" else {
            throw ConfigError(place: "\(place).method", message: "must be GET or HEAD, not '\(method)'")
        }
        let interval = try ConfigDuration.milliseconds(config.interval ?? "10s", "\(place).interval")
        let timeout = try ConfigDuration.milliseconds(config.timeout ?? "2s", "\(place).timeout")
        guard timeout <= interval else {
            throw ConfigError(place: "\(place).timeout", message: "must not exceed the interval (\(interval) ms)")
        }
        let rise = config.rise ?? 2
        let fall = config.fall ?? 3
        guard rise >= 1, fall >= 1 else { throw ConfigError(place: place, message: "rise and fall must be at least 1") }
        let expected = config.expect ?? []
        for status in expected where !(100...599).contains(status) {
            throw ConfigError(place: "\(place).expect", message: "\(status) is not an HTTP status")
        }
        return HealthCheck(url: strings.intern(probe), method: strings.intern(method), intervalMilliseconds: interval,
                           timeoutMilliseconds: timeout, rise: rise, fall: fall, expectedStatuses: expected)
    }
}

/// Durations in the config: `250ms`, `10s`, `2m`, `1h`, or a number of seconds.
enum ConfigDuration {
    /// The duration in milliseconds (1 ms … 1 day).
    static func milliseconds(_ text: String, _ place: String) throws -> UInt32 {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var number = Substring(text)
        var scale = 1000.0
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value > 0, value * scale >= 1, value * scale <= 86_400_000 else {
            throw ConfigError(place: place, message: "'\(text)' is not a duration between 1ms and 24h (e.g. 500ms, 10s, 2m, 1h)")
        }
        return UInt32(value * scale)
    }
}
