/// The decision contract, defined once: every backend calls these functions.
extension Snapshot {
    /// Decides one request.
    ///
    /// - Parameters:
    ///   - client: the client address (already resolved by the host), nil when it was malformed.
    ///   - method: the request method bytes.
    ///   - target: the raw request target: path and optional `?query`.
    ///   - headers: the request's headers — at least those named by ``Policy/headerNames``.
    ///   - health: which pool members are down (``HealthView/allUp`` without health information).
    ///   - location: where the `Location` value is written for redirects; if it is too small nothing
    ///     is written and ``Decision/locationLength`` tells the size needed.
    /// - Returns: the decision. Never allocates.
    @inline(__always)
    public func decide(client: IPAddress?, method: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                       headers: UnsafeBufferPointer<RequestHeader> = UnsafeBufferPointer(start: nil, count: 0),
                       health: HealthView = .allUp, location: UnsafeMutableRawBufferPointer) -> Decision {
        var trace = NoDecisionTrace()
        return decide(client: client, method: method, target: target, headers: headers, health: health,
                      location: location, trace: &trace)
    }

    /// ``decide(client:method:target:headers:health:location:)``, telling `trace` every pool and
    /// member it considered.
    public func decide<Trace: DecisionTrace>(
        client: IPAddress?, method: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
        headers: UnsafeBufferPointer<RequestHeader>, health: HealthView, location: UnsafeMutableRawBufferPointer,
        trace: inout Trace
    ) -> Decision {
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
            // Routes are read in place through their buffer: binding each to a local would copy
            // the struct (and retain and release every array in it) per route per request.
            return policy.routes.withUnsafeBufferPointer { routes -> Decision in
                for index in routes.indices {
                    guard routes[index].methods.matches(method, strings: strings),
                          routes[index].clients.matches(provider: providerIndex, isActive: isActive),
                          routes[index].headers.isEmpty || matches(routes[index].headers, headers),
                          routes[index].path.match(path, strings: strings, captures: captures)
                    else { continue }
                    var decision = Decision.pass(attributeIndex, attributes)
                    decision.route = Int32(index)
                    switch routes[index].action {
                    case .pass:
                        return decision
                    case .respond(let status, _):
                        decision.action = .respond
                        decision.status = status
                        return decision
                    case .redirect(let status, let redirectTarget, let template, let keepQuery, let hashKey):
                        guard OutputSyntax.isSafeRequestTarget(target) else { return decision }
                        let key = ObjectKey(bytes: hashKey == .path ? path : captured(hashKey, path, captures))
                        var selector = MemberSelector(pools: policy.pools, health: health, key: key)
                        let choice = selector.resolve(redirectTarget, policy: policy, client: attributes, isActive: isActive,
                                                      trace: &trace)
                        decision.step = choice.step
                        guard let member = choice.member else { return decision }
                        decision.action = .redirect
                        decision.status = status
                        decision.target = member.url
                        decision.pool = choice.pool
                        decision.member = Int32(bitPattern: member.slot)
                        decision.locationLength = writeLocation(
                            base: member.url, template: template, path: path, captures: captures,
                            query: keepQuery ? query : UnsafeRawBufferPointer(rebasing: query[..<query.startIndex]),
                            into: location)
                        return decision
                    }
                }
                return Decision.pass(attributeIndex, attributes)
            }
        }
    }

    /// The bytes of capture `key` (the path for ``HashKey/path``).
    @inline(__always)
    func captured(_ key: HashKey, _ path: UnsafeRawBufferPointer, _ captures: UnsafeMutableBufferPointer<Range<Int>>) -> UnsafeRawBufferPointer {
        guard case .capture(let index) = key, index < captures.count else { return path }
        return UnsafeRawBufferPointer(rebasing: path[captures[index]])
    }

    /// Whether the request's headers satisfy every condition.
    func matches(_ conditions: [HeaderCondition], _ headers: UnsafeBufferPointer<RequestHeader>) -> Bool {
        conditions.allSatisfy { condition in
            let name = strings.bytes(condition.name)
            return headers.contains { header in
                guard Bytes.equalIgnoringCase(header.name, lowered: name) else { return false }
                switch condition.match {
                case .present: return true
                case .exact(let value): return Bytes.equal(header.value, strings.bytes(value))
                case .prefix(let value): return Bytes.hasPrefix(header.value, strings.bytes(value))
                }
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
    public func explain(client: String, method: String, target: String, headers: [(name: String, value: String)] = [],
                        health: HealthView = .allUp) -> DecisionExplanation {
        explain(client: IPAddress(client), method: method, target: target, headers: headers, health: health)
    }

    /// Decides a request with an already-resolved client address and explains the result.
    public func explain(client: IPAddress?, method: String, target: String, headers: [(name: String, value: String)] = [],
                        health: HealthView = .allUp) -> DecisionExplanation {
        let methodBytes = Array(method.utf8)
        let targetBytes = Array(target.utf8)
        let headerBytes = headers.map { (Array($0.name.utf8), Array($0.value.utf8)) }
        var capacity = 512
        while true {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
            defer { buffer.deallocate() }
            var trace = RecordedDecisionTrace()
            let decision = methodBytes.withUnsafeBytes { methodBytes in
                targetBytes.withUnsafeBytes { targetBytes in
                    withRequestHeaders(headerBytes) { fields in
                        decide(client: client, method: methodBytes, target: targetBytes, headers: fields, health: health,
                               location: buffer, trace: &trace)
                    }
                }
            }
            if decision.action == .redirect && decision.locationLength > capacity {
                capacity = decision.locationLength
                continue
            }
            let location = decision.action == .redirect
                ? String(decoding: UnsafeRawBufferPointer(rebasing: buffer[..<decision.locationLength]), as: UTF8.self)
                : nil
            var responseHeaders: [(name: String, value: String)] = []
            if decision.action == .respond, case .respond(_, let list) = policy.routes[Int(decision.route)].action {
                responseHeaders = list.map { (strings.string($0.name), strings.string($0.value)) }
            }
            var explanation = DecisionExplanation(
                action: decision.action.name, status: Int(decision.status), location: location,
                provider: providerName(decision.attributes.provider), region: strings.string(decision.attributes.region),
                prefix: matchedPrefix(of: decision, client: client), asn: decision.attributes.asn,
                route: decision.route >= 0 ? strings.string(policy.routes[Int(decision.route)].name) : "",
                target: strings.string(decision.target), headers: responseHeaders)
            explanation.pool = poolName(decision.pool)
            explanation.step = decision.step
            explanation.skipped = skipped(trace)
            return explanation
        }
    }

    /// The members `trace` passed over, as explanations show them: `url(pool):reason`, or
    /// `url:reason` for a pool of one URL.
    public func skipped(_ trace: RecordedDecisionTrace) -> [String] {
        trace.skips.map { skip in
            let pool = poolName(skip.pool)
            return "\(strings.string(skip.member.url))\(pool.isEmpty ? "" : "(\(pool))"):\(skip.reason.rawValue)"
        }
    }

    /// A pool as people read it: the URL of a single-URL pool, `pool:NAME` for a named one, "" for none.
    public func describe(_ reference: PoolRef) -> String {
        guard let index = reference.index, index < policy.pools.count else { return "" }
        let pool = policy.pools[index]
        return pool.name.isEmpty ? strings.string(pool.members[0].url) : "pool:\(strings.string(pool.name))"
    }

    /// The name of a pool, "" for an unnamed one or none.
    public func poolName(_ reference: PoolRef) -> String {
        guard let index = reference.index, index < policy.pools.count else { return "" }
        return strings.string(policy.pools[index].name)
    }
}

/// Calls `body` with `headers` (name and value bytes) as ``RequestHeader``s, which point into
/// the arrays only during the call.
public func withRequestHeaders<Result>(_ headers: [([UInt8], [UInt8])], _ body: (UnsafeBufferPointer<RequestHeader>) -> Result) -> Result {
    var fields: [RequestHeader] = []
    fields.reserveCapacity(headers.count)
    func collect(_ index: Int) -> Result {
        guard index < headers.count else { return fields.withUnsafeBufferPointer(body) }
        return headers[index].0.withUnsafeBytes { name in
            headers[index].1.withUnsafeBytes { value in
                fields.append(RequestHeader(name: name, value: value))
                return collect(index + 1)
            }
        }
    }
    return collect(0)
}
