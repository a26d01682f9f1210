/// The policy section's wire codec: ``Policy/encode(into:)`` and ``Policy/decode(from:strings:)``.
/// Every variant's tag is a ``WireTag`` case, so encoder and decoder cannot disagree on a number.

/// The one-byte tags of the policy section's variants.
enum WireTag {
    /// ``PathPattern/Part``.
    enum PathPart: UInt8 { case literal = 0, segment, rest, digest }
    /// ``ClientFilter``.
    enum ClientFilter: UInt8 { case any = 0, matched, unmatched, providers, exceptProviders }
    /// ``RouteAction``.
    enum RouteAction: UInt8 { case pass = 0, respond, redirect }
    /// ``RedirectTarget``.
    enum RedirectTarget: UInt8 { case provider = 0, pool }
    /// ``HashKey``.
    enum HashKey: UInt8 { case path = 0, capture }
    /// ``HeaderCondition/Match``.
    enum HeaderMatch: UInt8 { case present = 0, exact, prefix }
    /// ``PoolFallback``.
    enum PoolFallback: UInt8 { case chain = 0, pool, pass }
    /// ``TemplatePart``.
    enum TemplatePart: UInt8 { case literal = 0, capture, path }
    /// ``FallbackAction``.
    enum Fallback: UInt8 { case pass = 0, redirect }
}

extension ByteWriter {
    /// Writes a tag.
    mutating func write<Tag: RawRepresentable<UInt8>>(_ tag: Tag) {
        write(tag.rawValue)
    }
}

extension ByteReader {
    /// Reads a tag, throwing `error(byte)` for a byte that names no case.
    mutating func read<Tag: RawRepresentable<UInt8>>(_ type: Tag.Type, else error: (UInt8) -> any Error) throws -> Tag {
        let byte: UInt8 = try read()
        guard let tag = Tag(rawValue: byte) else { throw error(byte) }
        return tag
    }
}

extension Policy {
    /// Serializes the policy (strings are references into the snapshot's string table).
    func encode(into writer: inout ByteWriter) {
        writer.write(UInt32(pools.count))
        for pool in pools {
            writer.write(pool.name)
            switch pool.fallback {
            case .chain: writer.write(WireTag.PoolFallback.chain)
            case .pool(let next):
                writer.write(WireTag.PoolFallback.pool)
                writer.write(next.raw)
            case .pass: writer.write(WireTag.PoolFallback.pass)
            }
            writer.write(UInt32(pool.members.count))
            for member in pool.members {
                writer.write(member.url)
                writer.write(member.weight)
                writer.write(member.priority)
                writer.write(UInt8(member.health == nil ? 0 : 1))
                if let check = member.health {
                    writer.write(check.url)
                    writer.write(check.method)
                    writer.write(check.intervalMilliseconds)
                    writer.write(check.timeoutMilliseconds)
                    writer.write(check.rise)
                    writer.write(check.fall)
                    writer.write(UInt32(check.expectedStatuses.count))
                    for status in check.expectedStatuses { writer.write(status) }
                }
            }
        }
        writer.write(UInt32(providers.count))
        for provider in providers {
            writer.write(provider.name)
            writer.write(UInt8(provider.isActive ? 1 : 0))
            writer.write(provider.priority)
            writer.write(provider.targets)
            writer.write(UInt32(provider.regionTargets.count))
            for entry in provider.regionTargets {
                writer.write(entry.region)
                writer.write(entry.targets)
            }
            writer.write(UInt32(provider.regionOrders.count))
            for order in provider.regionOrders {
                writer.write(order.region)
                writer.write(UInt32(order.nearest.count))
                for index in order.nearest { writer.write(index) }
            }
            writer.write(UInt8(provider.nearestRegionOnlyOnFailure ? 1 : 0))
        }
        writer.write(UInt32(routes.count))
        for route in routes {
            writer.write(route.name)
            writer.write(UInt8(route.methods.isNegated ? 1 : 0))
            writer.write(refs: route.methods.methods)
            writer.write(UInt32(route.path.parts.count))
            for part in route.path.parts {
                switch part {
                case .literal(let reference):
                    writer.write(WireTag.PathPart.literal)
                    writer.write(reference)
                case .segment: writer.write(WireTag.PathPart.segment)
                case .rest: writer.write(WireTag.PathPart.rest)
                case .digest: writer.write(WireTag.PathPart.digest)
                }
            }
            switch route.clients {
            case .any: writer.write(WireTag.ClientFilter.any)
            case .matched: writer.write(WireTag.ClientFilter.matched)
            case .unmatched: writer.write(WireTag.ClientFilter.unmatched)
            case .providers(let list):
                writer.write(WireTag.ClientFilter.providers)
                writer.write(indices: list)
            case .exceptProviders(let list):
                writer.write(WireTag.ClientFilter.exceptProviders)
                writer.write(indices: list)
            }
            writer.write(UInt32(route.headers.count))
            for condition in route.headers {
                writer.write(condition.name)
                switch condition.match {
                case .present:
                    writer.write(WireTag.HeaderMatch.present)
                case .exact(let value):
                    writer.write(WireTag.HeaderMatch.exact)
                    writer.write(value)
                case .prefix(let value):
                    writer.write(WireTag.HeaderMatch.prefix)
                    writer.write(value)
                }
            }
            switch route.action {
            case .pass:
                writer.write(WireTag.RouteAction.pass)
            case .respond(let status, let headers):
                writer.write(WireTag.RouteAction.respond)
                writer.write(status)
                writer.write(UInt32(headers.count))
                for header in headers {
                    writer.write(header.name)
                    writer.write(header.value)
                }
            case .redirect(let status, let target, let path, let keepQuery, let hashKey, let verify):
                writer.write(WireTag.RouteAction.redirect)
                writer.write(status)
                switch target {
                case .provider(let targetClass, let provider):
                    writer.write(WireTag.RedirectTarget.provider)
                    writer.write(targetClass.rawValue)
                    writer.write(provider ?? -1)
                case .pool(let reference):
                    writer.write(WireTag.RedirectTarget.pool)
                    writer.write(reference.raw)
                }
                writer.write(UInt32(path.count))
                for part in path {
                    switch part {
                    case .literal(let reference):
                        writer.write(WireTag.TemplatePart.literal)
                        writer.write(reference)
                    case .capture(let index):
                        writer.write(WireTag.TemplatePart.capture)
                        writer.write(UInt32(index))
                    case .path:
                        writer.write(WireTag.TemplatePart.path)
                    }
                }
                writer.write(UInt8(keepQuery ? 1 : 0))
                switch hashKey {
                case .path: writer.write(WireTag.HashKey.path)
                case .capture(let index):
                    writer.write(WireTag.HashKey.capture)
                    writer.write(UInt32(index))
                }
                writer.write(UInt8(verify ? 1 : 0))
            }
        }
        switch fallback {
        case .pass:
            writer.write(WireTag.Fallback.pass)
        case .redirect(let hosts):
            writer.write(WireTag.Fallback.redirect)
            writer.write(hosts)
        }
        writer.write(UInt32(trustedProxies.count))
        for prefix in trustedProxies {
            writer.write(UInt8(prefix.network.family.rawValue))
            switch prefix.network {
            case .v4(let value):
                writer.write(value)
            case .v6(let value):
                writer.write(UInt64(truncatingIfNeeded: value &>> 64))
                writer.write(UInt64(truncatingIfNeeded: value))
            }
            writer.write(UInt8(prefix.length))
        }
        writer.write(presence.timeoutMilliseconds)
        writer.write(presence.presentTTLMilliseconds)
        writer.write(presence.absentTTLMilliseconds)
        writer.write(presence.cacheEntries)
        writer.write(presence.concurrencyPerMirror)
        writer.write(presence.maxChecks)
    }

    /// Reads and validates a policy: every string, index, status and count is checked.
    static func decode(from reader: inout ByteReader, strings: StringTable) throws -> Policy {
        func fail(_ message: String) -> ByteReader.OutOfBounds { ByteReader.OutOfBounds(description: "policy section: \(message)") }
        func string(_ place: @autoclosure () -> String) throws -> StringRef {
            try strings.validate(StringRef(offset: try reader.read(), length: try reader.read()), "policy section: \(place())")
        }
        var pools: [Pool] = []
        /// A pool reference: none, or a pool read above.
        func pool(_ place: @autoclosure () -> String) throws -> PoolRef {
            let reference = PoolRef(raw: try reader.read())
            guard reference.isEmpty || reference.raw <= pools.count else { throw fail("\(place()) names pool \(reference.raw - 1)") }
            return reference
        }
        func hosts(_ place: String) throws -> TargetHosts {
            TargetHosts(registry: try pool("\(place) registry"), artifacts: try pool("\(place) artifacts"))
        }
        /// A redirect target: empty, or an http(s) base URL (see ``OutputSyntax/isTargetURL(_:)``).
        func url(_ place: @autoclosure () -> String) throws -> StringRef {
            let reference = try string(place())
            guard reference.isEmpty || OutputSyntax.isTargetURL(strings.bytes(reference)) else {
                throw fail("\(place()) is not an http(s) base URL: '\(strings.string(reference))'")
            }
            return reference
        }
        func status(_ place: String, _ allowed: ClosedRange<Int32>) throws -> Int32 {
            let value: Int32 = try reader.read()
            guard allowed.contains(value) else { throw fail("\(place) has status \(value)") }
            return value
        }

        var fallbacks: [PoolRef] = []  // checked once every pool is read
        for index in 0..<(try reader.readCount(minimumElementSize: 13)) {
            let place = "pool \(index)"
            let name = try string("\(place) name")
            guard name.isEmpty || OutputSyntax.isPoolName(strings.bytes(name)) else { throw fail("\(place) has an invalid name") }
            let fallback: PoolFallback
            switch try reader.read(WireTag.PoolFallback.self, else: { fail("\(place) has fallback kind \($0)") }) {
            case .chain: fallback = .chain
            case .pass: fallback = .pass
            case .pool:
                let next = PoolRef(raw: try reader.read())
                fallbacks.append(next)
                fallback = .pool(next)
            }
            var members: [PoolMember] = []
            for memberIndex in 0..<(try reader.readCount(minimumElementSize: 17)) {
                let memberPlace = "\(place) member \(memberIndex)"
                let target = try url("\(memberPlace) url")
                guard !target.isEmpty else { throw fail("\(memberPlace) has an empty URL") }
                let weight: UInt32 = try reader.read()
                guard weight >= 1 else { throw fail("\(memberPlace) has weight 0") }
                let priority: Int32 = try reader.read()
                var check: HealthCheck?
                if try reader.read(UInt8.self) != 0 {
                    let probe = try url("\(memberPlace) health url")
                    let method = try string("\(memberPlace) health method")
                    guard !probe.isEmpty, ["GET", "HEAD"].contains(strings.string(method)) else {
                        throw fail("\(memberPlace) has a bad health check")
                    }
                    let interval: UInt32 = try reader.read()
                    let timeout: UInt32 = try reader.read()
                    let rise: UInt8 = try reader.read()
                    let fall: UInt8 = try reader.read()
                    let statuses = try (0..<(try reader.readCount(minimumElementSize: 2))).map { _ in try reader.read(UInt16.self) }
                    guard interval > 0, timeout > 0, rise > 0, fall > 0, statuses.allSatisfy({ (100...599).contains($0) }) else {
                        throw fail("\(memberPlace) has a bad health check")
                    }
                    check = HealthCheck(url: probe, method: method, intervalMilliseconds: interval, timeoutMilliseconds: timeout,
                                        rise: rise, fall: fall, expectedStatuses: statuses)
                }
                members.append(PoolMember(url: target, weight: weight, priority: priority,
                                          seed: PoolMember.seed(url: strings.bytes(target)), slot: 0, health: check))
            }
            guard !members.isEmpty else { throw fail("\(place) has no members") }
            pools.append(Pool(name: name, members: members, fallback: fallback))
        }
        guard fallbacks.allSatisfy({ !$0.isEmpty && $0.raw <= pools.count }) else { throw fail("a pool's fallback names no pool") }

        var providers: [Provider] = []
        for index in 0..<(try reader.readCount(minimumElementSize: 30)) {
            let name = try string("provider \(index) name")
            let isActive: UInt8 = try reader.read()
            let priority: Int32 = try reader.read()
            let targets = try hosts("provider \(index)")
            var regions: [RegionTarget] = []
            for _ in 0..<(try reader.readCount(minimumElementSize: 16)) {
                regions.append(RegionTarget(region: try string("provider \(index) region"), targets: try hosts("provider \(index) region")))
            }
            var orders: [RegionOrder] = []
            for _ in 0..<(try reader.readCount(minimumElementSize: 12)) {
                let region = try string("provider \(index) region order")
                let nearest = try (0..<(try reader.readCount(minimumElementSize: 2))).map { _ in try reader.read(UInt16.self) }
                guard nearest.allSatisfy({ Int($0) < regions.count }) else { throw fail("provider \(index) orders a region it does not have") }
                orders.append(RegionOrder(region: region, nearest: nearest))
            }
            let onlyOnFailure: UInt8 = try reader.read()
            providers.append(Provider(name: name, isActive: isActive != 0, priority: priority, targets: targets, regionTargets: regions,
                                      regionOrders: orders, nearestRegionOnlyOnFailure: onlyOnFailure != 0))
        }
        func providerIndex(_ value: Int32, _ place: String) throws -> Int32 {
            guard value >= 0 && Int(value) < providers.count else { throw fail("\(place) names provider \(value)") }
            return value
        }
        func indices(_ place: String) throws -> [Int32] {
            try (0..<(try reader.readCount(minimumElementSize: 4))).map { _ in try providerIndex(try reader.read(), place) }
        }

        var routes: [Route] = []
        for index in 0..<(try reader.readCount(minimumElementSize: 20)) {
            let place = "route \(index)"
            let name = try string("\(place) name")
            let negated: UInt8 = try reader.read()
            let methods = try (0..<(try reader.readCount(minimumElementSize: 8))).map { _ in try string("\(place) method") }
            var parts: [PathPattern.Part] = []
            var captureCount = 0
            for _ in 0..<(try reader.readCount(minimumElementSize: 1)) {
                switch try reader.read(WireTag.PathPart.self, else: { fail("\(place) has path part kind \($0)") }) {
                case .literal:
                    parts.append(.literal(try string("\(place) path literal")))
                    continue
                case .segment: parts.append(.segment)
                case .rest: parts.append(.rest)
                case .digest: parts.append(.digest)
                }
                captureCount += 1  // every part but a literal captures
            }
            guard captureCount <= PathPattern.maximumCaptures else { throw fail("\(place) has \(captureCount) captures") }
            let clients: ClientFilter
            switch try reader.read(WireTag.ClientFilter.self, else: { fail("\(place) has client filter kind \($0)") }) {
            case .any: clients = .any
            case .matched: clients = .matched
            case .unmatched: clients = .unmatched
            case .providers: clients = .providers(try indices(place))
            case .exceptProviders: clients = .exceptProviders(try indices(place))
            }
            var conditions: [HeaderCondition] = []
            for _ in 0..<(try reader.readCount(minimumElementSize: 9)) {
                let name = try string("\(place) header condition")
                guard OutputSyntax.isToken(strings.bytes(name)), !strings.string(name).contains(where: \.isUppercase) else {
                    throw fail("\(place) has an invalid header condition name")
                }
                switch try reader.read(WireTag.HeaderMatch.self, else: { fail("\(place) has header match kind \($0)") }) {
                case .present: conditions.append(HeaderCondition(name: name, match: .present))
                case .exact: conditions.append(HeaderCondition(name: name, match: .exact(try string("\(place) header value"))))
                case .prefix: conditions.append(HeaderCondition(name: name, match: .prefix(try string("\(place) header value"))))
                }
            }
            let action: RouteAction
            switch try reader.read(WireTag.RouteAction.self, else: { fail("\(place) has action kind \($0)") }) {
            case .pass:
                action = .pass
            case .respond:
                let code = try status(place, 100...599)
                var headers: [Header] = []
                for _ in 0..<(try reader.readCount(minimumElementSize: 16)) {
                    let name = try string("\(place) header name")
                    guard OutputSyntax.isToken(strings.bytes(name)) else { throw fail("\(place) has an invalid header name") }
                    headers.append(Header(name: name, value: try string("\(place) header value")))
                }
                action = .respond(status: code, headers: headers)
            case .redirect:
                let code = try status(place, 300...399)
                let target: RedirectTarget
                switch try reader.read(WireTag.RedirectTarget.self, else: { fail("\(place) has target kind \($0)") }) {
                case .provider:
                    guard let targetClass = TargetClass(rawValue: try reader.read()) else { throw fail("\(place) has a bad target class") }
                    let fixed: Int32 = try reader.read()
                    target = .provider(targetClass, provider: fixed < 0 ? nil : try providerIndex(fixed, place))
                case .pool:
                    let reference = try pool("\(place) target")
                    guard !reference.isEmpty else { throw fail("\(place) redirects to no pool") }
                    target = .pool(reference)
                }
                var template: [TemplatePart] = []
                for _ in 0..<(try reader.readCount(minimumElementSize: 1)) {
                    switch try reader.read(WireTag.TemplatePart.self, else: { fail("\(place) has template part kind \($0)") }) {
                    case .literal:
                        let literal = try string("\(place) path template")
                        guard OutputSyntax.isPathText(strings.bytes(literal)) else { throw fail("\(place) has a path template with spaces") }
                        template.append(.literal(literal))
                    case .capture:
                        let capture = Int(try reader.read(UInt32.self))
                        guard capture < captureCount else { throw fail("\(place) template names capture \(capture)") }
                        template.append(.capture(capture))
                    case .path: template.append(.path)
                    }
                }
                guard OutputSyntax.templateStartsPath(template, strings: strings) else {
                    throw fail("\(place) has a path template that does not start with '/' or {path}")
                }
                let keepQuery: UInt8 = try reader.read()
                let hashKey: HashKey
                switch try reader.read(WireTag.HashKey.self, else: { fail("\(place) has hash key kind \($0)") }) {
                case .path: hashKey = .path
                case .capture:
                    let capture = Int(try reader.read(UInt32.self))
                    guard capture < captureCount else { throw fail("\(place) hashes capture \(capture)") }
                    hashKey = .capture(capture)
                }
                let verify: UInt8 = try reader.read()
                guard verify <= 1 else { throw fail("\(place) has verify flag \(verify)") }
                action = .redirect(status: code, target: target, path: template, keepQuery: keepQuery != 0, hashKey: hashKey,
                                   verify: verify == 1)
            }
            let pattern = PathPattern(parts: parts, captureNames: (0..<captureCount).map { "\($0)" })
            routes.append(Route(name: name, methods: MethodFilter(methods: methods, isNegated: negated != 0),
                                path: pattern, clients: clients, headers: conditions, action: action))
        }
        let fallback: FallbackAction
        switch try reader.read(WireTag.Fallback.self, else: { fail("fallback kind \($0)") }) {
        case .pass: fallback = .pass
        case .redirect: fallback = .redirect(try hosts("fallback"))
        }
        var trusted: [IPPrefix] = []
        for index in 0..<(try reader.readCount(minimumElementSize: 6)) {
            let familyNumber: UInt8 = try reader.read()
            let address: IPAddress
            switch AddressFamily(rawValue: Int(familyNumber)) {
            case .v4:
                address = .v4(try reader.read())
            case .v6:
                let high: UInt64 = try reader.read()
                let low: UInt64 = try reader.read()
                address = .v6(UInt128(high) &<< 64 | UInt128(low))
            case nil:
                throw fail("trusted proxy \(index) has family \(familyNumber)")
            }
            let length = Int(try reader.read(UInt8.self))
            guard length <= address.family.bitWidth else { throw fail("trusted proxy \(index) has length \(length)") }
            trusted.append(IPPrefix(network: address, length: length))
        }
        let presence = PresenceSettings(
            timeoutMilliseconds: try reader.read(), presentTTLMilliseconds: try reader.read(),
            absentTTLMilliseconds: try reader.read(), cacheEntries: try reader.read(), concurrencyPerMirror: try reader.read(),
            maxChecks: try reader.read())
        guard presence.timeoutMilliseconds > 0, presence.concurrencyPerMirror > 0,
              (1...PresenceSettings.cacheLimit).contains(presence.cacheEntries),
              (1...PresenceSettings.checkLimit).contains(presence.maxChecks) else {
            throw fail("has presence settings with a zero timeout or concurrency, a cache size outside "
                       + "1...\(PresenceSettings.cacheLimit) or maxChecks outside 1...\(PresenceSettings.checkLimit)")
        }
        guard reader.isAtEnd else { throw fail("has trailing bytes") }
        return Policy(providers: providers, routes: routes, fallback: fallback, trustedProxies: trusted, pools: pools,
                      presence: presence)
    }
}

extension ByteWriter {
    /// Writes a string reference.
    mutating func write(_ reference: StringRef) {
        write(reference.offset)
        write(reference.length)
    }

    /// Writes a pair of targets.
    mutating func write(_ hosts: TargetHosts) {
        write(hosts.registry.raw)
        write(hosts.artifacts.raw)
    }

    /// Writes a counted list of string references.
    mutating func write(refs: [StringRef]) {
        write(UInt32(refs.count))
        for reference in refs { write(reference) }
    }

    /// Writes a counted list of provider indices.
    mutating func write(indices: [Int32]) {
        write(UInt32(indices.count))
        for index in indices { write(index) }
    }
}
