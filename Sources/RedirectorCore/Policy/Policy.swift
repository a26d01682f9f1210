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
            TargetHosts(registry: try url("\(place) registry"), artifacts: try url("\(place) artifacts"))
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
                    let name = try string("\(place) header name")
                    guard OutputSyntax.isToken(strings.bytes(name)) else { throw fail("\(place) has an invalid header name") }
                    headers.append(Header(name: name, value: try string("\(place) header value")))
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
                    let url = try url("\(place) target")
                    guard !url.isEmpty else { throw fail("\(place) redirects to an empty URL") }
                    target = .url(url)
                case let kind:
                    throw fail("\(place) has target kind \(kind)")
                }
                var template: [TemplatePart] = []
                for _ in 0..<(try reader.readCount(minimumElementSize: 1)) {
                    switch try reader.read(UInt8.self) {
                    case 0:
                        let literal = try string("\(place) path template")
                        guard OutputSyntax.isPathText(strings.bytes(literal)) else { throw fail("\(place) has a path template with spaces") }
                        template.append(.literal(literal))
                    case 1:
                        let capture = Int(try reader.read(UInt32.self))
                        guard capture < captureCount else { throw fail("\(place) template names capture \(capture)") }
                        template.append(.capture(capture))
                    case 2: template.append(.path)
                    case let kind: throw fail("\(place) has template part kind \(kind)")
                    }
                }
                guard OutputSyntax.templateStartsPath(template, strings: strings) else {
                    throw fail("\(place) has a path template that does not start with '/' or {path}")
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

/// What may reach a response header: checked when a snapshot is opened (and by the compiler), so
/// that decisions can copy these bytes into a `Location` without looking at them again.
public enum OutputSyntax {
    /// Path text as a decision copies it from a request: no control byte, space or DEL (bytes
    /// 0x80–0xff pass, as they do in request paths).
    public static func isPathText(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where byte <= 0x20 || byte == 0x7f { return false }
        return true
    }

    /// An RFC 9110 token (header name).
    public static func isToken(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > 0 else { return false }
        for byte in bytes {
            let alphanumeric = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            guard alphanumeric || "!#$%&'*+-.^_`|~".utf8.contains(byte) else { return false }
        }
        return true
    }

    /// `http://` or `https://`, a non-empty authority of letters, digits, `.`, `-` and `:` (port),
    /// then an optional path of visible bytes without `?`, `#` or `\`: exactly what the compiler's
    /// target normalization produces. The authority ends the base URL, and a decision only ever
    /// appends `/…` or `?…` to it, so no request can change the host a redirect names.
    public static func isTargetURL(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index: Int
        if startsWith(bytes, "https://") {
            index = 8
        } else if startsWith(bytes, "http://") {
            index = 7
        } else {
            return false
        }
        let authorityStart = index
        while index < bytes.count && bytes[index] != UInt8(ascii: "/") {
            let byte = bytes[index]
            let allowed = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":")
            guard allowed else { return false }
            index += 1
        }
        guard index > authorityStart, bytes[authorityStart] != UInt8(ascii: ":") else { return false }
        while index < bytes.count {
            let byte = bytes[index]
            guard byte > 0x20, byte < 0x7f, byte != UInt8(ascii: "?"), byte != UInt8(ascii: "#"), byte != UInt8(ascii: "\\") else {
                return false
            }
            index += 1
        }
        return true
    }

    /// Whether a rewrite template's output starts with `/` (or is empty): a template that started
    /// with a capture could continue the target's host (`https://mirror.example` + `@evil.example`).
    static func templateStartsPath(_ template: [TemplatePart], strings: StringTable) -> Bool {
        for part in template {
            switch part {
            case .path:
                return true
            case .capture:
                return false
            case .literal(let reference):
                let bytes = strings.bytes(reference)
                if bytes.isEmpty { continue }
                return bytes[0] == UInt8(ascii: "/")
            }
        }
        return true
    }

    private static func startsWith(_ bytes: UnsafeRawBufferPointer, _ prefix: StaticString) -> Bool {
        guard bytes.count >= prefix.utf8CodeUnitCount else { return false }
        let start = prefix.utf8Start
        for index in 0..<prefix.utf8CodeUnitCount where bytes[index] != start[index] { return false }
        return true
    }
}
