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
    enum RedirectTarget: UInt8 { case provider = 0, url }
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
            case .redirect(let status, let target, let path, let keepQuery):
                writer.write(WireTag.RouteAction.redirect)
                writer.write(status)
                switch target {
                case .provider(let targetClass, let provider):
                    writer.write(WireTag.RedirectTarget.provider)
                    writer.write(targetClass.rawValue)
                    writer.write(provider ?? -1)
                case .url(let reference):
                    writer.write(WireTag.RedirectTarget.url)
                    writer.write(reference)
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
                case .url:
                    let url = try url("\(place) target")
                    guard !url.isEmpty else { throw fail("\(place) redirects to an empty URL") }
                    target = .url(url)
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
                action = .redirect(status: code, target: target, path: template, keepQuery: keepQuery != 0)
            }
            let pattern = PathPattern(parts: parts, captureNames: (0..<captureCount).map { "\($0)" })
            routes.append(Route(name: name, methods: MethodFilter(methods: methods, isNegated: negated != 0),
                                path: pattern, clients: clients, action: action))
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
