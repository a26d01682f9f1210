import RedirectorCore

/// What a listener does with the requests it receives.
public enum ListenerMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Paths decide: the ext_authz prefix, `/forward-auth`, `/auth-request`, `/healthz`, `/readyz`,
    /// `/metrics` (and `/explain` when enabled); any other path is a 404, or a standalone request when
    /// ``SidecarConfiguration/standaloneFallback`` is set.
    case auto
    /// Every request is an Envoy ext_authz HTTP check (the configured prefix is stripped when present).
    case extAuthz = "ext-authz"
    /// Every request is a forward-auth check (`X-Forwarded-Method` / `X-Forwarded-Uri`).
    case forwardAuth = "forward-auth"
    /// Every request is an nginx `auth_request` subrequest (`X-Original-Method` / `X-Original-URI`).
    case authRequest = "auth-request"
    /// Every request is served directly: redirects, responses, and the pass answer.
    case standalone

    /// The name used on the command line.
    public var description: String { rawValue }
}

/// One address to listen on and what to do there.
public struct ListenerConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The mode of the listener.
    public var mode: ListenerMode
    /// Host name or address to bind (`0.0.0.0`, `::`, `127.0.0.1`).
    public var host: String
    /// TCP port; 0 picks a free port.
    public var port: Int

    /// Creates a listener configuration.
    public init(mode: ListenerMode = .auto, host: String, port: Int) {
        self.mode = mode
        self.host = host
        self.port = port
    }

    /// Parses `[mode=]host:port`, `[mode=][v6-address]:port` or `[mode=]:port` (all interfaces).
    ///
    /// - Throws: ``ConfigurationError`` naming what is wrong.
    public init(parsing text: String) throws {
        var rest = Substring(text)
        var mode = ListenerMode.auto
        if let equals = rest.firstIndex(of: "=") {
            let name = rest[..<equals]
            guard let parsed = ListenerMode(rawValue: String(name)) else {
                throw ConfigurationError("listener '\(text)': unknown mode '\(name)' (expected one of: \(ListenerMode.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            mode = parsed
            rest = rest[rest.index(after: equals)...]
        }
        guard let colon = rest.lastIndex(of: ":") else {
            throw ConfigurationError("listener '\(text)': expected host:port")
        }
        var host = rest[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        }
        guard let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("listener '\(text)': port must be a number from 0 to 65535")
        }
        self.init(mode: mode, host: host.isEmpty ? "0.0.0.0" : String(host), port: port)
    }

    /// `mode=host:port`.
    public var description: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        return "\(mode.rawValue)=\(hostText):\(port)"
    }
}

/// What the standalone redirector answers when the decision is "pass".
public enum StandalonePassAnswer: Sendable, Hashable {
    /// A bodiless response with this status (404 by default).
    case status(Int)
    /// A redirect with this status to `base` + the request target (an origin that serves everything else).
    case redirect(status: Int, base: String)
}

/// A configuration value that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public let description: String

    /// Creates an error.
    public init(_ description: String) {
        self.description = description
    }
}

/// Everything `redirector serve` can be told.
public struct SidecarConfiguration: Sendable {
    /// The snapshot file (`.rdb`) to serve and watch.
    public var snapshotPath: String
    /// Listeners; by default one `auto` listener on 127.0.0.1:9000.
    public var listeners: [ListenerConfiguration] = [ListenerConfiguration(host: "127.0.0.1", port: 9000)]
    /// The `path_prefix` Envoy's `http_service` puts in front of the original path (`/ext_authz`).
    public var extAuthzPathPrefix = "/ext_authz"
    /// Path of the forward-auth endpoint on `auto` listeners.
    public var forwardAuthPath = "/forward-auth"
    /// Path of the nginx `auth_request` endpoint on `auto` listeners.
    public var authRequestPath = "/auth-request"
    /// Proxies trusted in addition to the snapshot's own `trusted_proxies`.
    public var trustedProxies: [IPPrefix] = []
    /// A request header naming the client address directly (for example one Envoy sets with
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`); believed only from trusted peers, before `X-Forwarded-For`.
    public var clientHeader: String?
    /// Whether `auto` listeners serve any unknown path as a standalone redirector instead of a 404.
    public var standaloneFallback = false
    /// The standalone redirector's answer for "pass".
    public var standalonePass = StandalonePassAnswer.status(404)
    /// The status a forward-auth or ext_authz check gets when the sidecar has no snapshot (200 lets the
    /// proxy serve the request as usual).
    public var unavailableStatus = 200
    /// Whether decision responses carry `X-Redirector-Explain` and `/explain` is served.
    public var explain = false
    /// How often the snapshot file is checked for a change; nil disables polling (SIGHUP still reloads).
    public var reloadInterval: Duration? = .seconds(5)
    /// Log a warning, on every snapshot load, for each source older than this (publisher date,
    /// else fetch time, else compile time); nil never warns.
    public var maximumSourceAge: Duration?
    /// Longest time a request may take from its head to its end before it is answered and the connection closed.
    public var requestTimeout: Duration = .seconds(5)
    /// Idle connections are closed after this long without a request.
    public var idleTimeout: Duration = .seconds(60)
    /// Largest request head (request line and headers) accepted, in bytes.
    public var maximumHeaderBytes = 16 * 1024
    /// Largest request body read (and discarded) before the connection is closed, in bytes.
    public var maximumBodyBytes = 64 * 1024
    /// Event-loop threads.
    public var threads = 1
    /// After SIGTERM, how long `/readyz` reports "not ready" before listeners close (for load balancers).
    public var shutdownDelay: Duration = .zero
    /// Longest wait for in-flight requests after listeners close.
    public var shutdownTimeout: Duration = .seconds(30)
    /// Start without a valid snapshot (not ready until one appears) instead of failing.
    public var allowMissingSnapshot = false
    /// A health state file: without ``probe``, one an external `redirector probe` publishes, read when it
    /// changes (at most every second); with ``probe``, where the in-process prober publishes its states.
    /// nil: decisions without health information (unless ``probe``).
    public var healthStatePath: String?
    /// Whether the sidecar probes the served snapshot's pool members itself and decides with its states.
    public var probe = false

    /// Creates a configuration serving `snapshotPath`.
    public init(snapshotPath: String) {
        self.snapshotPath = snapshotPath
    }

    /// Checks the values that flags and environment variables can get wrong.
    public func validate() throws {
        guard !listeners.isEmpty else { throw ConfigurationError("at least one listener is needed") }
        for path in [forwardAuthPath, authRequestPath] where !path.hasPrefix("/") {
            throw ConfigurationError("endpoint path '\(path)' must start with '/'")
        }
        guard extAuthzPathPrefix.isEmpty || (extAuthzPathPrefix.hasPrefix("/") && !extAuthzPathPrefix.hasSuffix("/")) else {
            throw ConfigurationError("ext_authz path prefix '\(extAuthzPathPrefix)' must start with '/' and not end with '/'")
        }
        if listeners.contains(where: { $0.mode == .auto }) && extAuthzPathPrefix.isEmpty {
            throw ConfigurationError("an auto listener needs a non-empty ext_authz path prefix; use an ext-authz listener for prefix-less checks")
        }
        switch standalonePass {
        case .status(let status):
            guard (200...599).contains(status) else { throw ConfigurationError("standalone pass status \(status) is not 200-599") }
        case .redirect(let status, let base):
            guard (300...399).contains(status) else { throw ConfigurationError("standalone pass redirect status \(status) is not 3xx") }
            guard base.hasPrefix("http://") || base.hasPrefix("https://"),
                  OutputSyntax.isPathText(base.utf8) else {
                throw ConfigurationError("standalone pass redirect '\(base)' must be an http(s) URL without spaces or control bytes")
            }
        }
        guard (200...599).contains(unavailableStatus) else { throw ConfigurationError("unavailable status \(unavailableStatus) is not 200-599") }
        if let clientHeader {
            guard OutputSyntax.isToken(clientHeader.utf8) else {
                throw ConfigurationError("client header '\(clientHeader)' is not a valid header name")
            }
        }
        guard threads >= 1 && threads <= 256 else { throw ConfigurationError("threads must be 1-256") }
        guard maximumHeaderBytes >= 1024 else { throw ConfigurationError("maximum header bytes must be at least 1024") }
        guard maximumBodyBytes >= 0 else { throw ConfigurationError("maximum body bytes must not be negative") }
        if let healthStatePath, healthStatePath.isEmpty { throw ConfigurationError("the health state path must not be empty") }
    }
}
