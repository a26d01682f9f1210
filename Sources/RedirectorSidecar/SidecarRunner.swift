import Glibc
import Logging
import NIOCore
import RedirectorCore
import RedirectorHealth
import ServiceLifecycle
import UnixSignals

/// Entry points for `redirector serve`: logging setup, value parsing and the service group.
public enum SidecarRunner {
    /// Event-loop threads used when none are configured: one per CPU.
    public static var defaultThreads: Int { max(1, System.coreCount) }

    /// Log output formats.
    public enum LogFormat: String, Sendable, CaseIterable {
        /// One JSON object per line (see ``JSONLogHandler``).
        case json
        /// swift-log's `StreamLogHandler` text lines.
        case text
    }

    /// Bootstraps swift-log once for the process and returns the sidecar's logger.
    public static func bootstrapLogging(level: Logger.Level, format: LogFormat) -> Logger {
        LoggingSystem.bootstrap { label in
            switch format {
            case .json:
                return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        var logger = Logger(label: "redirector.sidecar")
        logger.logLevel = level
        return logger
    }

    /// Bootstraps logging from level and format names, then runs (see ``run(configuration:logger:)``).
    ///
    /// - Throws: ``ConfigurationError`` for an unknown level or format, or when the server cannot start.
    public static func run(configuration: SidecarConfiguration, logLevel: String, logFormat: String) async throws {
        guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
            throw ConfigurationError("unknown log level '\(logLevel)' (trace, debug, info, notice, warning, error, critical)")
        }
        guard let format = LogFormat(rawValue: logFormat.lowercased()) else {
            throw ConfigurationError("unknown log format '\(logFormat)' (json or text)")
        }
        let logger = bootstrapLogging(level: level, format: format)
        do {
            try await run(configuration: configuration, logger: logger)
        } catch let error as ConfigurationError {
            logger.critical("cannot start", metadata: ["error": "\(error.description)"])
            throw error
        }
    }

    /// Runs the server, the reloader and the health services until SIGTERM or SIGINT, then shuts down gracefully.
    public static func run(configuration: SidecarConfiguration, logger: Logger) async throws {
        let server = try SidecarServer(configuration: configuration, logger: logger)
        // Signal handlers exist before anything listens: the SIGHUP source here, SIGTERM/SIGINT when the
        // group starts (the server binds inside its run()). A signal can then never hit a default action.
        let sighup = await UnixSignalsSequence(trapping: .sighup)
        let reloader = SnapshotReloader(store: server.store, interval: configuration.reloadInterval, signals: sighup)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: server), .init(service: reloader)] + healthServices(server: server, logger: logger)
                .map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch let error as ConfigurationError {
            throw error
        } catch {
            // The group reports a service's failure wrapped; a startup failure of the server is a ConfigurationError.
            if let startup = server.startupError { throw startup }
            throw error
        }
    }

    /// The services that give decisions their health state: none without `--probe` or `--health-state`;
    /// a ``HealthMonitor`` of the state file; or the in-process prober (publishing to the file, if one is
    /// named) with a monitor that checks its states stay fresh.
    static func healthServices(server: SidecarServer, logger: Logger) -> [any Service] {
        let configuration = server.configuration
        let store = server.store
        if configuration.probe {
            let monitor = HealthMonitor(store: store, source: .prober, logger: logger)
            let prober = HealthProbeService(
                snapshot: { store.current?.snapshot }, stateFile: configuration.healthStatePath, logger: logger,
                observer: server.metrics.health, onPublish: { monitor.accept($0) })
            return [monitor, prober]
        }
        if let path = configuration.healthStatePath {
            return [HealthMonitor(store: store, source: .file(path), logger: logger)]
        }
        return []
    }

    /// Parses a duration: `5` or `5s` (seconds), `250ms`, `2m`; fractions allowed (`0.5s`).
    public static func parseDuration(_ text: String) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: " ")
        var number = Substring(trimmed)
        var scale = 1.0
        for (suffix, factor) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where number.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite, value * scale < 86_400 * 365 else {
            throw ConfigurationError("'\(text)' is not a duration (examples: 5, 5s, 250ms, 2m)")
        }
        return .nanoseconds(Int64((value * scale * 1e9).rounded()))
    }

    /// Parses CIDR prefixes separated by commas or whitespace (a bare address is a /32 or /128).
    public static func parsePrefixes(_ texts: [String]) throws -> [IPPrefix] {
        var result: [IPPrefix] = []
        for text in texts {
            for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" }) {
                if let prefix = IPPrefix(item) {
                    result.append(prefix)
                } else if let address = IPAddress(item) {
                    result.append(IPPrefix(network: address, length: address.family.bitWidth))
                } else {
                    throw ConfigurationError("trusted proxy '\(item)' is not an address or CIDR prefix")
                }
            }
        }
        return result
    }

    /// The value of environment variable `name`, nil when unset or empty.
    public static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// Interprets an environment flag: `1`, `true`, `yes`, `on` (any case) are true.
    public static func isTrue(_ value: String?) -> Bool {
        guard let value else { return false }
        return ["1", "true", "yes", "on"].contains(value.lowercased())
    }
}

extension String {
    func trimmingCharacters(in character: Character) -> String {
        var text = Substring(self)
        while text.first == character { text.removeFirst() }
        while text.last == character { text.removeLast() }
        return String(text)
    }
}
