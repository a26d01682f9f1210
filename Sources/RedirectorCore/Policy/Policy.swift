/// The decision policy: providers, routes, the fallback for clients without a target, and trust.
public struct Policy: Hashable, Sendable {
    /// Providers, indexed by ``MatchAttributes/provider``.
    public var providers: [Provider]
    /// Routes in evaluation order.
    public var routes: [Route]
    /// What a redirect does when its provider has no target.
    public var fallback: FallbackAction
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` / Envoy headers are believed (see ``ClientAddressResolver``).
    public var trustedProxies: [IPPrefix]

    /// Creates a policy.
    public init(providers: [Provider], routes: [Route], fallback: FallbackAction = .pass, trustedProxies: [IPPrefix] = []) {
        self.providers = providers
        self.routes = routes
        self.fallback = fallback
        self.trustedProxies = trustedProxies
    }
}

extension Policy {
    /// Serializes the policy (strings are references into the snapshot's string table).
    func encode(into writer: inout ByteWriter) {
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
                    writer.write(UInt8(0))
                    writer.write(reference)
                case .segment: writer.write(UInt8(1))
                case .rest: writer.write(UInt8(2))
                case .digest: writer.write(UInt8(3))
                }
            }
            switch route.clients {
            case .any: writer.write(UInt8(0))
            case .matched: writer.write(UInt8(1))
            case .unmatched: writer.write(UInt8(2))
            case .providers(let list):
                writer.write(UInt8(3))
                writer.write(indices: list)
            case .exceptProviders(let list):
                writer.write(UInt8(4))
                writer.write(indices: list)
            }
            switch route.action {
            case .pass:
                writer.write(UInt8(0))
            case .respond(let status, let headers):
                writer.write(UInt8(1))
                writer.write(status)
                writer.write(UInt32(headers.count))
                for header in headers {
                    writer.write(header.name)
                    writer.write(header.value)
                }
            case .redirect(let status, let target, let path, let keepQuery):
                writer.write(UInt8(2))
                writer.write(status)
                switch target {
                case .provider(let targetClass, let provider):
                    writer.write(UInt8(0))
                    writer.write(targetClass.rawValue)
                    writer.write(provider ?? -1)
                case .url(let reference):
                    writer.write(UInt8(1))
                    writer.write(reference)
                }
                writer.write(UInt32(path.count))
                for part in path {
                    switch part {
                    case .literal(let reference):
                        writer.write(UInt8(0))
                        writer.write(reference)
                    case .capture(let index):
                        writer.write(UInt8(1))
                        writer.write(UInt32(index))
                    case .path:
                        writer.write(UInt8(2))
                    }
                }
                writer.write(UInt8(keepQuery ? 1 : 0))
            }
        }
        switch fallback {
        case .pass:
            writer.write(UInt8(0))
        case .redirect(let hosts):
            writer.write(UInt8(1))
            writer.write(hosts)
        }
        writer.write(UInt32(trustedProxies.count))
        for prefix in trustedProxies {
            switch prefix.network {
            case .v4(let value):
                writer.write(UInt8(4))
                writer.write(value)
            case .v6(let value):
                writer.write(UInt8(6))
                writer.write(UInt64(truncatingIfNeeded: value &>> 64))
                writer.write(UInt64(truncatingIfNeeded: value))
            }
            writer.write(UInt8(prefix.length))
        }
    }

    /// Reads and validates a policy: every string, index, status and count is checked.
    static func decode(from reader: inout ByteReader, strings: StringTable) throws -> Policy {
        func fail(_ message: String) -> ByteReader.OutOfBounds { ByteReader.OutOfBounds(description: "policy section: \(message)") }
        func string(_ place: @autoclosure () -> String) throws -> StringRef {
            try strings.validate(StringRef(offset: try reader.read(), length: try reader.read()), "policy section: \(place())")
        }
        func hosts(_ place: String) throws -> TargetHosts {
            TargetHosts(registry: try string("\(place) registry"), artifacts: try string("\(place) artifacts"))
        }
        func status(_ place: String, _ allowed: ClosedRange<Int32>) throws -> Int32 {
            let value: Int32 = try reader.read()
            guard allowed.contains(value) else { throw fail("\(place) has status \(value)") }
            return value
        }

        var providers: [Provider] = []
        for index in 0..<(try reader.readCount(minimumElementSize: 29)) {
            let name = try string("provider \(index) name")
            let isActive: UInt8 = try reader.read()
            let priority: Int32 = try reader.read()
            let targets = try hosts("provider \(index)")
            var regions: [RegionTarget] = []
            for _ in 0..<(try reader.readCount(minimumElementSize: 24)) {
                regions.append(RegionTarget(region: try string("provider \(index) region"), targets: try hosts("provider \(index) region")))
            }
            providers.append(Provider(name: name, isActive: isActive != 0, priority: priority, targets: targets, regionTargets: regions))
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
                let kind: UInt8 = try reader.read()
                switch kind {
                case 0: parts.append(.literal(try string("\(place) path literal")))
                case 1: parts.append(.segment)
                case 2: parts.append(.rest)
                case 3: parts.append(.digest)
                default: throw fail("\(place) has path part kind \(kind)")
                }
                if kind != 0 { captureCount += 1 }
            }
            guard captureCount <= PathPattern.maximumCaptures else { throw fail("\(place) has \(captureCount) captures") }
            let clients: ClientFilter
            switch try reader.read(UInt8.self) {
            case 0: clients = .any
            case 1: clients = .matched
            case 2: clients = .unmatched
            case 3: clients = .providers(try indices(place))
            case 4: clients = .exceptProviders(try indices(place))
            case let kind: throw fail("\(place) has client filter kind \(kind)")
            }
            let action: RouteAction
            switch try reader.read(UInt8.self) {
            case 0:
                action = .pass
            case 1:
                let code = try status(place, 100...599)
                var headers: [Header] = []
                for _ in 0..<(try reader.readCount(minimumElementSize: 16)) {
                    headers.append(Header(name: try string("\(place) header name"), value: try string("\(place) header value")))
                }
                action = .respond(status: code, headers: headers)
            case 2:
                let code = try status(place, 300...399)
                let target: RedirectTarget
                switch try reader.read(UInt8.self) {
                case 0:
                    guard let targetClass = TargetClass(rawValue: try reader.read()) else { throw fail("\(place) has a bad target class") }
                    let fixed: Int32 = try reader.read()
                    target = .provider(targetClass, provider: fixed < 0 ? nil : try providerIndex(fixed, place))
                case 1:
                    target = .url(try string("\(place) target"))
                case let kind:
                    throw fail("\(place) has target kind \(kind)")
                }
                var template: [TemplatePart] = []
                for _ in 0..<(try reader.readCount(minimumElementSize: 1)) {
                    switch try reader.read(UInt8.self) {
                    case 0: template.append(.literal(try string("\(place) path template")))
                    case 1:
                        let capture = Int(try reader.read(UInt32.self))
                        guard capture < captureCount else { throw fail("\(place) template names capture \(capture)") }
                        template.append(.capture(capture))
                    case 2: template.append(.path)
                    case let kind: throw fail("\(place) has template part kind \(kind)")
                    }
                }
                let keepQuery: UInt8 = try reader.read()
                action = .redirect(status: code, target: target, path: template, keepQuery: keepQuery != 0)
            case let kind:
                throw fail("\(place) has action kind \(kind)")
            }
            let pattern = PathPattern(parts: parts, captureNames: (0..<captureCount).map { "\($0)" })
            routes.append(Route(name: name, methods: MethodFilter(methods: methods, isNegated: negated != 0),
                                path: pattern, clients: clients, action: action))
        }
        let fallback: FallbackAction
        switch try reader.read(UInt8.self) {
        case 0: fallback = .pass
        case 1: fallback = .redirect(try hosts("fallback"))
        case let kind: throw fail("fallback kind \(kind)")
        }
        var trusted: [IPPrefix] = []
        for index in 0..<(try reader.readCount(minimumElementSize: 6)) {
            let family: UInt8 = try reader.read()
            let address: IPAddress
            switch family {
            case 4:
                address = .v4(try reader.read())
            case 6:
                let high: UInt64 = try reader.read()
                let low: UInt64 = try reader.read()
                address = .v6(UInt128(high) &<< 64 | UInt128(low))
            default:
                throw fail("trusted proxy \(index) has family \(family)")
            }
            let length = Int(try reader.read(UInt8.self))
            guard length <= (family == 4 ? 32 : 128) else { throw fail("trusted proxy \(index) has length \(length)") }
            trusted.append(IPPrefix(network: address, length: length))
        }
        guard reader.isAtEnd else { throw fail("has trailing bytes") }
        return Policy(providers: providers, routes: routes, fallback: fallback, trustedProxies: trusted)
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
        write(hosts.registry)
        write(hosts.artifacts)
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
