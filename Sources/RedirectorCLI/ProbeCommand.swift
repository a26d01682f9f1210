import ArgumentParser
import Logging
import RedirectorCore
import RedirectorHealth
import RedirectorSidecar
import ServiceLifecycle
import UnixSignals

/// `redirector probe`: the health prober on its own, for deployments without the sidecar (NGINX,
/// OpenResty) or with several sidecars sharing one prober.
///
/// It probes every pool member that has a health check and keeps a health state file up to date
/// (atomic replacement, rewritten on every change and at least every heartbeat); readers treat a
/// file older than its stale-after as absent. The snapshot is reloaded when its file changes and
/// on SIGHUP; new pools restart the probes. SIGTERM and SIGINT stop it.
struct ProbeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Probe the snapshot's pool members and publish their health to a state file.",
        discussion: """
            Every member with a health check is probed on its interval; `fall` failures in a row take it down, \
            `rise` successes bring it back, and members start up. The state file is what the NGINX module \
            (redirector_health_state) and `redirector serve --health-state` read. The snapshot is reloaded when \
            its file changes and on SIGHUP; SIGTERM and SIGINT stop the prober.
            """)

    @Option(name: .shortAndLong, help: "The snapshot file (.rdb). Env: REDIRECTOR_SNAPSHOT.")
    var snapshot: String?

    @Option(name: .long, help: ArgumentHelp("The health state file written. Env: REDIRECTOR_HEALTH_STATE.", valueName: "file"))
    var state: String?

    @Option(name: .long, help: "Snapshot file poll interval (5, 5s, 500ms; 0 disables polling, SIGHUP still reloads). Env: REDIRECTOR_RELOAD_INTERVAL. Default 5s.")
    var reloadInterval: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical. Env: REDIRECTOR_LOG_LEVEL. Default info.")
    var logLevel: String?

    @Option(name: .long, help: "Log format: json or text. Env: REDIRECTOR_LOG_FORMAT. Default json.")
    var logFormat: String?

    func run() async throws {
        let env = SidecarRunner.environment
        guard let snapshotPath = snapshot ?? env("REDIRECTOR_SNAPSHOT") else {
            throw ValidationError("a snapshot is required: --snapshot FILE or REDIRECTOR_SNAPSHOT")
        }
        guard let statePath = state ?? env("REDIRECTOR_HEALTH_STATE"), !statePath.isEmpty else {
            throw ValidationError("a state file is required: --state FILE or REDIRECTOR_HEALTH_STATE")
        }
        var interval: Duration? = .seconds(5)
        if let text = reloadInterval ?? env("REDIRECTOR_RELOAD_INTERVAL") {
            do {
                let parsed = try SidecarRunner.parseDuration(text)
                interval = parsed == .zero ? nil : parsed
            } catch let error as ConfigurationError {
                throw ValidationError(error.description)
            }
        }
        let levelName = logLevel ?? env("REDIRECTOR_LOG_LEVEL") ?? "info"
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else {
            throw ValidationError("unknown log level '\(levelName)' (trace, debug, info, notice, warning, error, critical)")
        }
        let formatName = logFormat ?? env("REDIRECTOR_LOG_FORMAT") ?? "json"
        guard let format = SidecarRunner.LogFormat(rawValue: formatName.lowercased()) else {
            throw ValidationError("unknown log format '\(formatName)' (json or text)")
        }
        _ = SidecarRunner.bootstrapLogging(level: level, format: format)
        var logger = Logger(label: "redirector.probe")
        logger.logLevel = level

        // The sidecar's store: validation, atomic swaps, rejected files keep the previous snapshot.
        let store = SnapshotStore(path: snapshotPath, metrics: SidecarMetrics(), logger: logger)
        guard store.reload(reason: "startup") else {
            throw CommandFailure(description: store.status.lastError ?? "cannot load \(snapshotPath)")
        }
        let sighup = await UnixSignalsSequence(trapping: .sighup)
        let reloader = SnapshotReloader(store: store, interval: interval, signals: sighup)
        let prober = HealthProbeService(snapshot: { store.current?.snapshot }, stateFile: statePath, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: reloader), .init(service: prober)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}
