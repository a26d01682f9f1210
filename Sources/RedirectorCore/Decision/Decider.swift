/// The decision contract, defined once: every backend calls these functions.
extension Snapshot {
    /// Decides one request.
    ///
    /// - Parameters:
    ///   - client: the client address (already resolved by the host), nil when it was malformed.
    ///   - method: the request method bytes.
    ///   - target: the raw request target: path and optional `?query`.
    ///   - location: where the `Location` value is written for redirects; if it is too small nothing
    ///     is written and ``Decision/locationLength`` tells the size needed.
    /// - Returns: the decision. Never allocates.
    public func decide(client: IPAddress?, method: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                       location: UnsafeMutableRawBufferPointer) -> Decision {
        var attributeIndex: UInt32?
        var attributes = MatchAttributes(provider: -1)
        if let client, let index = self.attributeIndex(client) {
            attributeIndex = index
            attributes = self.attributes(at: index)
        }
        let providers = policy.providers
        let providerIndex = attributes.provider
        let isActive = providerIndex >= 0 && providers[Int(providerIndex)].isActive

        var pathEnd = 0
        while pathEnd < target.count && target[pathEnd] != UInt8(ascii: "?") { pathEnd &+= 1 }
        let path = UnsafeRawBufferPointer(rebasing: target[..<pathEnd])
        let query = UnsafeRawBufferPointer(rebasing: target[pathEnd...])

        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: PathPattern.maximumCaptures) { captures in
            captures.initialize(repeating: 0..<0)
            for (index, route) in policy.routes.enumerated() {
                guard route.methods.matches(method, strings: strings),
                      route.clients.matches(provider: providerIndex, isActive: isActive),
                      route.path.match(path, strings: strings, captures: captures)
                else { continue }
                var decision = Decision.pass(attributeIndex, attributes)
                decision.route = Int32(index)
                switch route.action {
                case .pass:
                    return decision
                case .respond(let status, _):
                    decision.action = .respond
                    decision.status = status
                    return decision
                case .redirect(let status, let redirectTarget, let template, let keepQuery):
                    guard OutputSyntax.isSafeRequestTarget(target) else { return decision }
                    let base = resolve(redirectTarget, client: attributes, isActive: isActive)
                    guard !base.isEmpty else { return decision }
                    decision.action = .redirect
                    decision.status = status
                    decision.target = base
                    decision.locationLength = writeLocation(
                        base: base, template: template, path: path, captures: captures,
                        query: keepQuery ? query : UnsafeRawBufferPointer(rebasing: query[..<query.startIndex]),
                        into: location)
                    return decision
                }
            }
            return Decision.pass(attributeIndex, attributes)
        }
    }

    /// The base URL a redirect goes to, or empty when the policy's fallback passes.
    @inline(__always)
    func resolve(_ target: RedirectTarget, client: MatchAttributes, isActive: Bool) -> StringRef {
        switch target {
        case .url(let url):
            return url
        case .provider(let targetClass, let fixed):
            let index = fixed ?? client.provider
            if index >= 0 {
                let provider = policy.providers[Int(index)]
                if provider.isActive {
                    let region = index == client.provider ? client.region : .empty
                    let host = provider.target(targetClass, region: region)
                    if !host.isEmpty { return host }
                }
            }
            switch policy.fallback {
            case .pass: return .empty
            case .redirect(let hosts): return hosts[targetClass]
            }
        }
    }

    /// Writes `base + path-or-template + query`; returns the full length (written only if it fits).
    /// The base is the configured target byte for byte; when it ends with `/` and what follows
    /// starts with `/`, the two slashes are written once (`https://m.example/` + `/v2/x`).
    func writeLocation(base: StringRef, template: [TemplatePart], path: UnsafeRawBufferPointer,
                       captures: UnsafeMutableBufferPointer<Range<Int>>, query: UnsafeRawBufferPointer,
                       into buffer: UnsafeMutableRawBufferPointer) -> Int {
        func piece(_ part: TemplatePart) -> UnsafeRawBufferPointer {
            switch part {
            case .literal(let reference): return strings.bytes(reference)
            case .capture(let index): return UnsafeRawBufferPointer(rebasing: path[captures[index]])
            case .path: return path
            }
        }
        var baseBytes = strings.bytes(base)
        if baseBytes.last == UInt8(ascii: "/") {
            var next: UInt8?
            if template.isEmpty {
                next = path.first
            } else {
                for part in template where next == nil { next = piece(part).first }
            }
            if next == UInt8(ascii: "/") { baseBytes = UnsafeRawBufferPointer(rebasing: baseBytes.dropLast()) }
        }
        var length = baseBytes.count &+ query.count
        if template.isEmpty {
            length &+= path.count
        } else {
            for part in template { length &+= piece(part).count }
        }
        guard length <= buffer.count, let start = buffer.baseAddress else { return length }
        var offset = 0
        func append(_ bytes: UnsafeRawBufferPointer) {
            guard let source = bytes.baseAddress, bytes.count > 0 else { return }
            (start + offset).copyMemory(from: source, byteCount: bytes.count)
            offset &+= bytes.count
        }
        append(baseBytes)
        if template.isEmpty {
            append(path)
        } else {
            for part in template { append(piece(part)) }
        }
        append(query)
        return length
    }
}

extension Snapshot {
    /// Decides a request given as text and explains the result (allocates; not for the hot path).
    public func explain(client: String, method: String, target: String) -> DecisionExplanation {
        explain(client: IPAddress(client), method: method, target: target)
    }

    /// Decides a request with an already-resolved client address and explains the result.
    public func explain(client: IPAddress?, method: String, target: String) -> DecisionExplanation {
        var method = method
        var target = target
        var capacity = 512
        while true {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
            defer { buffer.deallocate() }
            let decision = method.withUTF8 { methodBytes in
                target.withUTF8 { targetBytes in
                    decide(client: client, method: UnsafeRawBufferPointer(methodBytes),
                           target: UnsafeRawBufferPointer(targetBytes), location: buffer)
                }
            }
            if decision.action == .redirect && decision.locationLength > capacity {
                capacity = decision.locationLength
                continue
            }
            let location = decision.action == .redirect
                ? String(decoding: UnsafeRawBufferPointer(rebasing: buffer[..<decision.locationLength]), as: UTF8.self)
                : nil
            var headers: [(name: String, value: String)] = []
            if decision.action == .respond, case .respond(_, let list) = policy.routes[Int(decision.route)].action {
                headers = list.map { (strings.string($0.name), strings.string($0.value)) }
            }
            return DecisionExplanation(
                action: decision.action.name, status: Int(decision.status), location: location,
                provider: providerName(decision.attributes.provider), region: strings.string(decision.attributes.region),
                prefix: matchedPrefix(of: decision, client: client), asn: decision.attributes.asn,
                route: decision.route >= 0 ? strings.string(policy.routes[Int(decision.route)].name) : "",
                target: strings.string(decision.target), headers: headers)
        }
    }
}
