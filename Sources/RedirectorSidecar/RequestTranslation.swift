import NIOHTTP1
import RedirectorCore

/// What a request asks for.
public enum Endpoint: Int, Sendable, CaseIterable {
    /// An Envoy ext_authz HTTP check.
    case extAuthz = 0
    /// A forward-auth check (Caddy `forward_auth`, Traefik ForwardAuth).
    case forwardAuth
    /// An nginx `auth_request` subrequest.
    case authRequest
    /// A request the standalone redirector answers itself.
    case standalone
    /// Liveness.
    case healthz
    /// Readiness.
    case readyz
    /// Prometheus metrics.
    case metrics
    /// The decision of a request described by query parameters (only with explain enabled).
    case explain
    /// Anything else (404).
    case notFound

    /// The metric label.
    public var label: String {
        switch self {
        case .extAuthz: return "ext_authz"
        case .forwardAuth: return "forward_auth"
        case .authRequest: return "auth_request"
        case .standalone: return "standalone"
        case .healthz: return "healthz"
        case .readyz: return "readyz"
        case .metrics: return "metrics"
        case .explain: return "explain"
        case .notFound: return "not_found"
        }
    }

    /// Whether the endpoint decides a request.
    public var decides: Bool {
        switch self {
        case .extAuthz, .forwardAuth, .authRequest, .standalone: return true
        default: return false
        }
    }
}

/// The request to decide, taken out of a check request.
public struct CheckRequest: Sendable, Hashable {
    /// Method of the original request.
    public var method: String
    /// Raw target (path and query) of the original request.
    public var target: String
    /// The client address, nil when a trusted header named a malformed one (it then never matches).
    public var client: IPAddress?
    /// Host of the original request when known (logs and explanations only).
    public var host: String?
    /// The original request's headers that routes look at: lower-case name → every value, in
    /// order (a route's condition holds when any value matches, as in every backend).
    public var headers: [String: [String]]

    /// Creates a check request.
    public init(method: String, target: String, client: IPAddress?, host: String? = nil, headers: [String: [String]] = [:]) {
        self.method = method
        self.target = target
        self.client = client
        self.host = host
        self.headers = headers
    }

    /// ``headers`` as a decision reads them.
    var headerList: [(name: String, value: String)] {
        headers.sorted { $0.key < $1.key }.flatMap { entry in entry.value.map { (name: entry.key, value: $0) } }
    }
}

/// A response, before it is written.
public struct SidecarResponse: Sendable {
    /// Status code.
    public var status: Int
    /// Headers in order (Content-Length is added by the writer).
    public var headers: [(name: String, value: String)]
    /// Body bytes.
    public var body: [UInt8]
    /// Outcome label for decision endpoints.
    public var outcome: DecisionOutcome

    /// Creates a response.
    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], outcome: DecisionOutcome = .pass) {
        self.status = status
        self.headers = headers
        self.body = body
        self.outcome = outcome
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// Turns host requests into decision requests and decisions into host responses, for every mode.
///
/// Pure: no I/O, no clocks. The server calls it per request; the unit tests call it directly.
public struct RequestTranslator: Sendable {
    /// The configuration it follows.
    public let configuration: SidecarConfiguration
    private let clientHeader: String?

    /// Header that carries an explanation when explain is enabled.
    public static let explainHeader = "X-Redirector-Explain"
    /// Header with the decision's real status in `auth_request` answers (which are 401 for every non-allow).
    public static let statusHeader = "X-Redirector-Status"
    /// Largest `Location` the sidecar builds; longer redirects pass instead.
    public static let maximumLocationBytes = 64 * 1024

    /// A translator for `configuration`.
    public init(configuration: SidecarConfiguration) {
        self.configuration = configuration
        self.clientHeader = configuration.clientHeader?.lowercased()
    }

    // MARK: Routing

    /// Which endpoint `uri` addresses on a listener in `mode`, and where the original target starts
    /// (ext_authz: after the prefix; standalone: the whole URI).
    public func route(uri: String, mode: ListenerMode) -> (endpoint: Endpoint, target: Substring) {
        switch mode {
        case .extAuthz:
            if let rest = Self.strip(prefix: configuration.extAuthzPathPrefix, from: uri) { return (.extAuthz, rest) }
            return (.extAuthz, Substring(uri))
        case .forwardAuth: return (.forwardAuth, "")
        case .authRequest: return (.authRequest, "")
        case .standalone: return (.standalone, Substring(uri))
        case .auto: break
        }
        let path = uri.utf8.firstIndex(of: UInt8(ascii: "?")).map { uri[..<$0] } ?? Substring(uri)
        if let rest = Self.strip(prefix: configuration.extAuthzPathPrefix, from: uri) { return (.extAuthz, rest) }
        switch path {
        case configuration.forwardAuthPath: return (.forwardAuth, "")
        case configuration.authRequestPath: return (.authRequest, "")
        case "/healthz": return (.healthz, "")
        case "/readyz": return (.readyz, "")
        case "/metrics": return (.metrics, "")
        case "/explain" where configuration.explain: return (.explain, "")
        default: return configuration.standaloneFallback ? (.standalone, Substring(uri)) : (.notFound, "")
        }
    }

    /// The rest of `uri` after `prefix` when `uri` is `prefix`, `prefix/…` or `prefix?…`.
    static func strip(prefix: String, from uri: String) -> Substring? {
        guard !prefix.isEmpty, uri.hasPrefix(prefix) else { return nil }
        let rest = uri.utf8.dropFirst(prefix.utf8.count)
        guard let first = rest.first else { return "" }
        guard first == UInt8(ascii: "/") || first == UInt8(ascii: "?") else { return nil }
        return Substring(rest)
    }

    // MARK: Request translation

    /// The request to decide, or nil when the check request lacks the original request.
    ///
    /// - Parameters:
    ///   - endpoint: a deciding endpoint.
    ///   - method: the check request's own method.
    ///   - target: the target ``route(uri:mode:)`` found.
    ///   - headers: the check request's headers.
    ///   - peer: the TCP peer (nil for a peer without an IP address).
    ///   - resolver: trust settings of the serving snapshot.
    ///   - routeHeaders: the (lower-case) names of the request headers the snapshot's routes look at;
    ///     every mode receives the original request's headers on the check request (Envoy: those
    ///     its `allowed_headers` names).
    public func checkRequest(endpoint: Endpoint, method: String, target: Substring, headers: HTTPHeaders,
                             peer: IPAddress?, resolver: ClientAddressResolver, routeHeaders: [String] = []) -> CheckRequest? {
        var request = originalRequest(endpoint: endpoint, method: method, target: target, headers: headers,
                                      client: clientAddress(headers: headers, peer: peer, resolver: resolver))
        for name in routeHeaders where headers.contains(name: name) {
            request?.headers[name] = headers[name]
        }
        return request
    }

    /// The original request a check request carries, by endpoint.
    private func originalRequest(endpoint: Endpoint, method: String, target: Substring, headers: HTTPHeaders,
                                 client: IPAddress?) -> CheckRequest? {
        switch endpoint {
        case .extAuthz, .standalone:
            return CheckRequest(method: method, target: String(target), client: client, host: headers.first(name: "host"))
        case .forwardAuth:
            guard let uri = headers.first(name: "x-forwarded-uri") else { return nil }
            return CheckRequest(method: headers.first(name: "x-forwarded-method") ?? method, target: uri, client: client,
                                host: headers.first(name: "x-forwarded-host") ?? headers.first(name: "host"))
        case .authRequest:
            guard let uri = headers.first(name: "x-original-uri") else { return nil }
            return CheckRequest(method: headers.first(name: "x-original-method") ?? method, target: uri, client: client,
                                host: headers.first(name: "x-original-host") ?? headers.first(name: "host"))
        default:
            return nil
        }
    }

    /// The client address: the TCP peer unless it is a trusted proxy; from a trusted proxy, the configured
    /// client header, else the rightmost untrusted `X-Forwarded-For` entry, else `x-envoy-external-address`
    /// or `X-Real-IP` (see ``ClientAddressResolver``).
    public func clientAddress(headers: HTTPHeaders, peer: IPAddress?, resolver: ClientAddressResolver) -> IPAddress? {
        guard let peer else { return nil }
        guard resolver.isTrusted(peer) else { return peer }
        if let clientHeader, let value = headers.first(name: clientHeader) {
            return IPAddress(Self.trimmed(value))
        }
        let forwardedFor = headers["x-forwarded-for"]
        let realIP = headers.first(name: "x-envoy-external-address") ?? headers.first(name: "x-real-ip")
        return resolver.resolve(peer: peer, forwardedFor: forwardedFor, realIP: realIP)
    }

    static func trimmed(_ text: String) -> Substring {
        var text = Substring(text)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }

    // MARK: Decision translation

    /// Decides `request` with `snapshot` (the allocation-free decider, `location` as scratch space).
    ///
    /// - Parameter health: which members are down; the caller keeps the state it points into alive.
    public func decide(_ request: CheckRequest, snapshot: Snapshot, health: HealthView = .allUp,
                       location: UnsafeMutableRawBufferPointer) -> (decision: Decision, location: String?) {
        var method = request.method
        var target = request.target
        let headers = request.headerList.map { (Array($0.name.utf8), Array($0.value.utf8)) }
        let decision = method.withUTF8 { methodBytes in
            target.withUTF8 { targetBytes in
                withRequestHeaders(headers) { fields in
                    snapshot.decide(client: request.client, method: UnsafeRawBufferPointer(methodBytes),
                                    target: UnsafeRawBufferPointer(targetBytes), headers: fields, health: health, location: location)
                }
            }
        }
        guard decision.action == .redirect else { return (decision, nil) }
        if decision.locationLength <= location.count {
            return (decision, String(decoding: UnsafeRawBufferPointer(rebasing: location[..<decision.locationLength]), as: UTF8.self))
        }
        guard decision.locationLength <= Self.maximumLocationBytes else {
            // Too long to send as a header: the request passes.
            var passed = decision
            passed.action = .pass
            passed.status = 0
            return (passed, nil)
        }
        let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: decision.locationLength, alignment: 1)
        defer { larger.deallocate() }
        return decide(request, snapshot: snapshot, health: health, location: larger)
    }

    /// The answer of `endpoint` to a decision.
    public func response(to decision: Decision, location: String?, endpoint: Endpoint, target: String,
                         snapshot: Snapshot) -> SidecarResponse {
        var extra: [(name: String, value: String)] = []
        if decision.action == .respond, decision.route >= 0, Int(decision.route) < snapshot.policy.routes.count,
           case .respond(_, let headers) = snapshot.policy.routes[Int(decision.route)].action {
            extra = headers.map { (snapshot.strings.string($0.name), snapshot.strings.string($0.value)) }
        }
        let status = Int(decision.status)
        switch (endpoint, decision.action) {
        case (.standalone, .pass):
            switch configuration.standalonePass {
            case .status(let code):
                return SidecarResponse(status: code, outcome: .pass)
            case .redirect(let code, let base):
                guard Self.isSafeRedirectTarget(target) else { return SidecarResponse(status: 404, outcome: .pass) }
                return SidecarResponse(status: code, headers: [("Location", base + target)], outcome: .pass)
            }
        case (_, .pass):
            return SidecarResponse(status: 200, outcome: .pass)
        case (.authRequest, .redirect):
            var headers: [(name: String, value: String)] = [("Location", location ?? "")]
            headers.append((Self.statusHeader, "\(status)"))
            return SidecarResponse(status: 401, headers: headers, outcome: .redirect)
        case (_, .redirect):
            return SidecarResponse(status: status, headers: [("Location", location ?? "")], outcome: .redirect)
        case (.standalone, .respond):
            return SidecarResponse(status: status, headers: extra, outcome: .respond)
        case (.authRequest, .respond):
            // nginx understands 2xx (allow), 401 and 403 only: every other answer goes out as 401 and
            // the configuration's `error_page 401` location relays X-Redirector-Status.
            if (200...299).contains(status) { return SidecarResponse(status: 200, headers: extra, outcome: .respond) }
            return SidecarResponse(status: 401, headers: extra + [(Self.statusHeader, "\(status)")], outcome: .respond)
        case (_, .respond):
            // A proxy treats 200 as "allow" (ext_authz: exactly 200); a 2xx answer of a route cannot be
            // made by the proxy itself, so the request is allowed and the upstream answers.
            if (200...299).contains(status) { return SidecarResponse(status: 200, headers: extra, outcome: .respond) }
            return SidecarResponse(status: status, headers: extra, outcome: .respond)
        }
    }

    /// The answer when the check request lacks the original request.
    public func invalidResponse(endpoint: Endpoint) -> SidecarResponse {
        switch endpoint {
        case .standalone: return SidecarResponse(status: 400, outcome: .invalid)
        // Proxies must not fail a request because of their own configuration gap: allow it.
        default: return SidecarResponse(status: 200, outcome: .invalid)
        }
    }

    /// The answer while no snapshot is loaded.
    public func unavailableResponse(endpoint: Endpoint) -> SidecarResponse {
        switch endpoint {
        case .standalone: return SidecarResponse(status: 503, headers: [("Retry-After", "5")], outcome: .unavailable)
        default: return SidecarResponse(status: configuration.unavailableStatus, outcome: .unavailable)
        }
    }

    /// Only absolute paths (not `//host…`) of ``OutputSyntax/isPathText(_:)`` bytes are appended
    /// to a configured origin.
    static func isSafeRedirectTarget(_ target: String) -> Bool {
        guard target.utf8.first == UInt8(ascii: "/"), !target.hasPrefix("//") else { return false }
        return OutputSyntax.isPathText(target.utf8)
    }

    /// The `X-Redirector-Explain` value of a request: the decision's fields, with its pool, fallback step,
    /// skipped members and presence `checks`, and the client.
    public func explanation(_ request: CheckRequest, snapshot: Snapshot, health: HealthView = .allUp, checks: [String] = []) -> String {
        var explanation = snapshot.explain(client: request.client, method: request.method, target: request.target,
                                           headers: request.headerList, health: health)
        explanation.checks = checks
        var text = explanation.description
        text += " client=\(request.client.map { "\($0)" } ?? "-")"
        // Header values must stay printable ASCII.
        return String(decoding: text.utf8.map { ByteClass.isFieldValueByte($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    /// The `/explain?format=json` body of a request: one JSON object with the explanation's fields,
    /// `pool`, `step` (``FallbackStep/name``), `skipped` (`url(pool):reason` each) and the client.
    public func explanationJSON(_ request: CheckRequest, snapshot: Snapshot, health: HealthView = .allUp, checks: [String] = []) -> String {
        var explanation = snapshot.explain(client: request.client, method: request.method, target: request.target,
                                           headers: request.headerList, health: health)
        explanation.checks = checks
        var fields = explanation.jsonMembers.map { "\(JSON.string($0.key)):\($0.value)" }
        fields.append("\"client\":\(request.client.map { JSON.string("\($0)") } ?? "null")")
        return "{" + fields.joined(separator: ",") + "}"
    }
}
