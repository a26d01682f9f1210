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
        // Through the pointer: a copy of the tables (`self.tables.pointee`) is a 216-byte memcpy.
        let tables = self.tables
        let providerIndex = attributes.provider
        let isActive = providerIndex >= 0 && Int(providerIndex) < tables.pointee.providers.count && tables.pointee.providers[Int(providerIndex)].isActive

        let scan = OutputSyntax.scanRequestTarget(target)
        let path = UnsafeRawBufferPointer(rebasing: target[..<scan.pathLength])
        let query = UnsafeRawBufferPointer(rebasing: target[scan.pathLength...])

        return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: PathPattern.maximumCaptures) { captures in
            captures.initialize(repeating: 0..<0)
            for index in 0..<tables.pointee.routes.count {
                let route = tables.pointee.routes[index]
                guard matches(tables.pointee.methods[route.methods], negated: route.methodsNegated, method),
                      route.clients.matches(provider: providerIndex, isActive: isActive, lists: tables.pointee.clientProviders),
                      route.headers.count == 0 || matches(tables.pointee.headerConditions[route.headers], headers),
                      PathPattern.match(tables.pointee.pathParts[route.path], path, strings: strings, captures: captures)
                else { continue }
                var decision = Decision.pass(attributeIndex, attributes)
                decision.route = Int32(index)
                let action = route.action
                switch action.kind {
                case .pass:
                    return decision
                case .respond:
                    decision.action = .respond
                    decision.status = action.status
                    return decision
                case .redirect:
                    // A request out of presence checks goes to the routes that need none.
                    if action.verify && health.skipsVerifyingRoutes { continue }
                    guard scan.isSafe else { return decision }
                    let key = ObjectKey(bytes: action.hashKey == .path ? path : captured(action.hashKey, path, captures))
                    var selector = MemberSelector(tables: self.tables, health: health, key: key)
                    let choice = selector.resolve(action.target, client: attributes, trace: &trace)
                    decision.step = choice.step
                    guard let member = choice.member else {
                        // A checked route with no member left (down, or found without the
                        // object) leaves the request to the routes after it.
                        if action.verify { continue }
                        return decision
                    }
                    decision.needsVerification = action.verify
                    decision.action = .redirect
                    decision.status = action.status
                    decision.target = member.url
                    decision.pool = choice.pool
                    decision.member = Int32(bitPattern: member.slot)
                    decision.locationLength = writeLocation(
                        base: member.url, template: tables.pointee.templateParts[action.template], path: path, captures: captures,
                        query: action.keepQuery ? query : UnsafeRawBufferPointer(rebasing: query[..<query.startIndex]),
                        into: location)
                    return decision
                }
            }
            return Decision.pass(attributeIndex, attributes)
        }
    }

    /// The names of what decided `decision`: its provider, route and pool (empty for none).
    public func names(of decision: Decision) -> (provider: StringRef, route: StringRef, pool: StringRef) {
        let tables = self.tables
        let provider = decision.attributes.provider, route = Int(decision.route)
        return (provider: provider >= 0 && Int(provider) < tables.pointee.providers.count ? tables.pointee.providers[Int(provider)].name : .empty,
                route: route >= 0 && route < tables.pointee.routes.count ? tables.pointee.routes[route].name : .empty,
                pool: decision.pool.index.map { $0 < tables.pointee.pools.count ? tables.pointee.pools[$0].name : .empty } ?? .empty)
    }

    /// The response headers of route `route` (none unless it is a respond route, or out of range),
    /// in memory the snapshot owns: valid while the snapshot lives.
    public func responseHeaders(route: Int) -> UnsafeBufferPointer<Header> {
        let tables = self.tables
        guard route >= 0, route < tables.pointee.routes.count else { return UnsafeBufferPointer(start: nil, count: 0) }
        return tables.pointee.responseHeaders[tables.pointee.routes[route].action.headers]
    }

    /// The bytes of capture `key` (the path for ``HashKey/path``).
    @inline(__always)
    func captured(_ key: HashKey, _ path: UnsafeRawBufferPointer, _ captures: UnsafeMutableBufferPointer<Range<Int>>) -> UnsafeRawBufferPointer {
        guard case .capture(let index) = key, index < captures.count else { return path }
        return UnsafeRawBufferPointer(rebasing: path[captures[index]])
    }

    /// Whether `method` passes a method filter listing `methods` (every other method when `negated`).
    @inline(__always)
    func matches(_ methods: UnsafeBufferPointer<StringRef>, negated: Bool, _ method: UnsafeRawBufferPointer) -> Bool {
        var listed = false
        for candidate in methods where Bytes.equal(strings.bytes(candidate), method) {
            listed = true
            break
        }
        return listed != negated
    }

    /// Whether the request's headers satisfy every condition.
    func matches(_ conditions: UnsafeBufferPointer<HeaderCondition>, _ headers: UnsafeBufferPointer<RequestHeader>) -> Bool {
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
    func writeLocation(base: StringRef, template: UnsafeBufferPointer<TemplatePart>, path: UnsafeRawBufferPointer,
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
        var trace = RecordedDecisionTrace()
        let (decision, location) = decide(client: client, method: method, target: target, headers: headers, health: health, trace: &trace)
        let responseHeaders = decision.action == .respond
            ? self.responseHeaders(route: Int(decision.route)).map { (name: strings.string($0.name), value: strings.string($0.value)) }
            : []
        let names = self.names(of: decision)
        var explanation = DecisionExplanation(
            action: decision.action.name, status: Int(decision.status), location: location,
            provider: strings.string(names.provider), region: strings.string(decision.attributes.region),
            prefix: matchedPrefix(of: decision, client: client), asn: decision.attributes.asn,
            route: strings.string(names.route), target: strings.string(decision.target), headers: responseHeaders)
        explanation.pool = strings.string(names.pool)
        explanation.source = source(ofAttribute: decision.attributeIndex)?.name ?? ""
        explanation.step = decision.step
        explanation.skipped = skipped(trace)
        return explanation
    }

    /// Decides a request given as text (allocates; not for the hot path): the decision and its
    /// `Location` (nil unless it redirects).
    public func decide(client: IPAddress?, method: String, target: String, headers: [(name: String, value: String)] = [],
                       health: HealthView = .allUp) -> (decision: Decision, location: String?) {
        var trace = NoDecisionTrace()
        return decide(client: client, method: method, target: target, headers: headers, health: health, trace: &trace)
    }

    private func decide<Trace: DecisionTrace>(client: IPAddress?, method: String, target: String, headers: [(name: String, value: String)],
                                              health: HealthView, trace: inout Trace) -> (decision: Decision, location: String?) {
        let methodBytes = Array(method.utf8)
        let targetBytes = Array(target.utf8)
        let headerBytes = headers.map { (Array($0.name.utf8), Array($0.value.utf8)) }
        var capacity = 512
        while true {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 1)
            defer { buffer.deallocate() }
            var attempt = trace
            let decision = methodBytes.withUnsafeBytes { methodBytes in
                targetBytes.withUnsafeBytes { targetBytes in
                    withRequestHeaders(headerBytes) { fields in
                        decide(client: client, method: methodBytes, target: targetBytes, headers: fields, health: health,
                               location: buffer, trace: &attempt)
                    }
                }
            }
            if decision.action == .redirect && decision.locationLength > capacity {
                capacity = decision.locationLength
                continue
            }
            trace = attempt
            let location = decision.action == .redirect
                ? String(decoding: UnsafeRawBufferPointer(rebasing: buffer[..<decision.locationLength]), as: UTF8.self)
                : nil
            return (decision, location)
        }
    }

    /// The members `trace` passed over, as explanations show them: `url(pool):reason`, or
    /// `url:reason` for a pool of one URL.
    public func skipped(_ trace: RecordedDecisionTrace) -> [String] {
        trace.skips.map { skip in
            let pool = poolName(skip.pool)
            return "\(strings.string(skip.url))\(pool.isEmpty ? "" : "(\(pool))"):\(skip.reason.rawValue)"
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
