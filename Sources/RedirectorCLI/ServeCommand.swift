import ArgumentParser
import RedirectorCore
import RedirectorSidecar

/// `redirector serve`: the sidecar — Envoy ext_authz HTTP, forward-auth (Caddy, Traefik), nginx
/// `auth_request` and a standalone redirector, with health, readiness, metrics and live reload.
///
/// Every option has an environment fallback (`REDIRECTOR_…`), used when the option is not given.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the sidecar: Envoy ext_authz HTTP, forward-auth, nginx auth_request and standalone redirects.",
        discussion: """
            Endpoints of an auto listener: <ext-authz-prefix>/… (Envoy ext_authz HTTP), /forward-auth (Caddy \
            forward_auth, Traefik ForwardAuth), /auth-request (nginx auth_request), /healthz, /readyz, /metrics, \
            and /explain with --explain. Listeners in another mode treat every path as that mode's request.
            The snapshot is reloaded on SIGHUP and when the file changes; a snapshot that fails validation is \
            rejected and the previous one keeps serving. SIGTERM shuts down gracefully. See docs/sidecar.md.
            Health: --probe checks pool members in process; --health-state FILE reads the states of an external \
            `redirector probe` (or, with --probe, publishes them there). Decisions skip members that are down.
            """)

    @Option(name: .shortAndLong, help: "The snapshot file (.rdb). Env: REDIRECTOR_SNAPSHOT.")
    var snapshot: String?

    @Option(name: .long, help: ArgumentHelp(
        "Listen address, [mode=]host:port; modes: auto (default), ext-authz, forward-auth, auth-request, standalone. Repeatable. Env: REDIRECTOR_LISTEN (comma-separated). Default 127.0.0.1:9000.",
        valueName: "[mode=]host:port"))
    var listen: [String] = []

    @Option(name: .customLong("trusted-proxy"), help: ArgumentHelp(
        "Peer trusted to report the client (X-Forwarded-For, X-Real-IP, x-envoy-external-address, --client-header), added to the snapshot's trusted_proxies. Repeatable. Env: REDIRECTOR_TRUSTED_PROXIES (comma-separated).",
        valueName: "CIDR"))
    var trustedProxies: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Header naming the client address directly, believed from trusted proxies only (e.g. one Envoy sets to %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%). Env: REDIRECTOR_CLIENT_HEADER.",
        valueName: "name"))
    var clientHeader: String?

    @Option(name: .long, help: "Envoy http_service path_prefix, stripped from check requests. Env: REDIRECTOR_EXT_AUTHZ_PREFIX. Default /ext_authz.")
    var extAuthzPrefix: String?

    @Option(name: .long, help: "Forward-auth endpoint path. Env: REDIRECTOR_FORWARD_AUTH_PATH. Default /forward-auth.")
    var forwardAuthPath: String?

    @Option(name: .long, help: "nginx auth_request endpoint path. Env: REDIRECTOR_AUTH_REQUEST_PATH. Default /auth-request.")
    var authRequestPath: String?

    @Flag(name: .long, help: "Auto listeners answer unknown paths as the standalone redirector instead of 404. Env: REDIRECTOR_STANDALONE_FALLBACK=1.")
    var standaloneFallback = false

    @Option(name: .long, help: "Standalone answer when the decision is pass. Env: REDIRECTOR_STANDALONE_PASS_STATUS. Default 404 (302 with --standalone-pass-redirect).")
    var standalonePassStatus: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Standalone: redirect passed requests to this origin base URL + the request target. Env: REDIRECTOR_STANDALONE_PASS_REDIRECT.",
        valueName: "url"))
    var standalonePassRedirect: String?

    @Option(name: .long, help: "Status of check endpoints while no snapshot is loaded (200 = allow). Env: REDIRECTOR_UNAVAILABLE_STATUS. Default 200.")
    var unavailableStatus: Int?

    @Flag(name: .long, help: "Add X-Redirector-Explain to decision answers and serve /explain. Env: REDIRECTOR_EXPLAIN=1.")
    var explain = false

    @Option(name: .long, help: "Warn in the log, on every snapshot load, about each source older than this (3600, 90m, 36h). Env: REDIRECTOR_MAX_SOURCE_AGE. Default: no warning.")
    var maxSourceAge: String?

    @Option(name: .long, help: "Snapshot file poll interval (5, 5s, 500ms; 0 disables polling, SIGHUP still reloads). Env: REDIRECTOR_RELOAD_INTERVAL. Default 5s.")
    var reloadInterval: String?

    @Option(name: .long, help: "Longest time from a request's head to its end. Env: REDIRECTOR_REQUEST_TIMEOUT. Default 5s.")
    var requestTimeout: String?

    @Option(name: .long, help: "Idle keep-alive connections are closed after this. Env: REDIRECTOR_IDLE_TIMEOUT. Default 60s.")
    var idleTimeout: String?

    @Option(name: .long, help: "Largest request head in bytes. Env: REDIRECTOR_MAX_HEADER_BYTES. Default 16384.")
    var maxHeaderBytes: Int?

    @Option(name: .long, help: "Largest request body read (and discarded) in bytes. Env: REDIRECTOR_MAX_BODY_BYTES. Default 65536.")
    var maxBodyBytes: Int?

    @Option(name: .long, help: "Event-loop threads. Env: REDIRECTOR_THREADS. Default: one per CPU.")
    var threads: Int?

    @Option(name: .long, help: "After SIGTERM, report not ready this long before closing listeners. Env: REDIRECTOR_SHUTDOWN_DELAY. Default 0.")
    var shutdownDelay: String?

    @Option(name: .long, help: "Longest wait for in-flight requests at shutdown. Env: REDIRECTOR_SHUTDOWN_TIMEOUT. Default 30s.")
    var shutdownTimeout: String?

    @Flag(name: .long, help: "Start without a valid snapshot (not ready until one appears). Env: REDIRECTOR_ALLOW_MISSING_SNAPSHOT=1.")
    var allowMissingSnapshot = false

    @Option(name: .long, help: ArgumentHelp(
        "Health state file: decide with the states an external `redirector probe` writes there (re-read when it changes); with --probe, where the in-process prober writes its states. A missing, stale or corrupt file means deciding without health. Env: REDIRECTOR_HEALTH_STATE.",
        valueName: "file"))
    var healthState: String?

    @Flag(name: .long, help: "Probe the snapshot's pool members in process and decide with their health. Env: REDIRECTOR_PROBE=1.")
    var probe = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical. Env: REDIRECTOR_LOG_LEVEL. Default info.")
    var logLevel: String?

    @Option(name: .long, help: "Log format: json or text. Env: REDIRECTOR_LOG_FORMAT. Default json.")
    var logFormat: String?

    /// The configuration from options, then environment variables, then defaults.
    func makeConfiguration() throws -> SidecarConfiguration {
        let env = SidecarRunner.environment
        func list(_ values: [String], _ name: String) -> [String] {
            if !values.isEmpty { return values }
            return env(name).map { $0.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } } ?? []
        }
        func integer(_ value: Int?, _ name: String) throws -> Int? {
            if let value { return value }
            guard let text = env(name) else { return nil }
            guard let parsed = Int(text) else { throw ValidationError("\(name)='\(text)' is not a number") }
            return parsed
        }
        func duration(_ value: String?, _ name: String) throws -> Duration? {
            guard let text = value ?? env(name) else { return nil }
            return try SidecarRunner.parseDuration(text)
        }

        guard let path = snapshot ?? env("REDIRECTOR_SNAPSHOT") else {
            throw ValidationError("a snapshot is required: --snapshot FILE or REDIRECTOR_SNAPSHOT")
        }
        var configuration = SidecarConfiguration(snapshotPath: path)
        let listeners = list(listen, "REDIRECTOR_LISTEN")
        if !listeners.isEmpty {
            configuration.listeners = try listeners.map(ListenerConfiguration.init(parsing:))
        }
        configuration.trustedProxies = try SidecarRunner.parsePrefixes(list(trustedProxies, "REDIRECTOR_TRUSTED_PROXIES"))
        configuration.clientHeader = clientHeader ?? env("REDIRECTOR_CLIENT_HEADER")
        if let prefix = extAuthzPrefix ?? env("REDIRECTOR_EXT_AUTHZ_PREFIX") { configuration.extAuthzPathPrefix = prefix }
        if let path = forwardAuthPath ?? env("REDIRECTOR_FORWARD_AUTH_PATH") { configuration.forwardAuthPath = path }
        if let path = authRequestPath ?? env("REDIRECTOR_AUTH_REQUEST_PATH") { configuration.authRequestPath = path }
        configuration.standaloneFallback = standaloneFallback || SidecarRunner.isTrue(env("REDIRECTOR_STANDALONE_FALLBACK"))
        let passStatus = try integer(standalonePassStatus, "REDIRECTOR_STANDALONE_PASS_STATUS")
        if let base = standalonePassRedirect ?? env("REDIRECTOR_STANDALONE_PASS_REDIRECT") {
            configuration.standalonePass = .redirect(status: passStatus ?? 302, base: base)
        } else if let passStatus {
            configuration.standalonePass = .status(passStatus)
        }
        if let status = try integer(unavailableStatus, "REDIRECTOR_UNAVAILABLE_STATUS") { configuration.unavailableStatus = status }
        configuration.explain = explain || SidecarRunner.isTrue(env("REDIRECTOR_EXPLAIN"))
        if let interval = try duration(reloadInterval, "REDIRECTOR_RELOAD_INTERVAL") {
            configuration.reloadInterval = interval == .zero ? nil : interval
        }
        if let age = try duration(maxSourceAge, "REDIRECTOR_MAX_SOURCE_AGE") { configuration.maximumSourceAge = age == .zero ? nil : age }
        if let timeout = try duration(requestTimeout, "REDIRECTOR_REQUEST_TIMEOUT") { configuration.requestTimeout = timeout }
        if let timeout = try duration(idleTimeout, "REDIRECTOR_IDLE_TIMEOUT") { configuration.idleTimeout = timeout }
        if let bytes = try integer(maxHeaderBytes, "REDIRECTOR_MAX_HEADER_BYTES") { configuration.maximumHeaderBytes = bytes }
        if let bytes = try integer(maxBodyBytes, "REDIRECTOR_MAX_BODY_BYTES") { configuration.maximumBodyBytes = bytes }
        configuration.threads = try integer(threads, "REDIRECTOR_THREADS") ?? SidecarRunner.defaultThreads
        if let delay = try duration(shutdownDelay, "REDIRECTOR_SHUTDOWN_DELAY") { configuration.shutdownDelay = delay }
        if let timeout = try duration(shutdownTimeout, "REDIRECTOR_SHUTDOWN_TIMEOUT") { configuration.shutdownTimeout = timeout }
        configuration.allowMissingSnapshot = allowMissingSnapshot || SidecarRunner.isTrue(env("REDIRECTOR_ALLOW_MISSING_SNAPSHOT"))
        configuration.healthStatePath = healthState ?? env("REDIRECTOR_HEALTH_STATE")
        configuration.probe = probe || SidecarRunner.isTrue(env("REDIRECTOR_PROBE"))
        try configuration.validate()
        return configuration
    }

    func run() async throws {
        let configuration: SidecarConfiguration
        do {
            configuration = try makeConfiguration()
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        do {
            try await SidecarRunner.run(
                configuration: configuration,
                logLevel: logLevel ?? SidecarRunner.environment("REDIRECTOR_LOG_LEVEL") ?? "info",
                logFormat: logFormat ?? SidecarRunner.environment("REDIRECTOR_LOG_FORMAT") ?? "json")
        } catch let error as ConfigurationError {
            throw CommandFailure(description: error.description)
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }
}
