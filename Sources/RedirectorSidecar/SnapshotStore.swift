import Glibc
import Logging
import Prometheus
import RedirectorCore
import RedirectorHealth
import Synchronization

/// The identity of a file version: a changed device, inode, size or modification time means a new file.
public struct FileIdentity: Hashable, Sendable, CustomStringConvertible {
    /// Device number.
    public var device: UInt64
    /// Inode number.
    public var inode: UInt64
    /// Size in bytes.
    public var size: Int64
    /// Modification time, nanoseconds since the epoch.
    public var modified: Int64

    /// The identity of the file at `path` (symbolic links followed), nil when it cannot be read.
    public static func of(path: String) -> FileIdentity? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return FileIdentity(
            device: UInt64(status.st_dev), inode: UInt64(status.st_ino), size: Int64(status.st_size),
            modified: Int64(status.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(status.st_mtim.tv_nsec))
    }

    /// `dev:ino size mtime`.
    public var description: String { "\(device):\(inode) \(size)B mtime=\(modified)" }
}

/// A snapshot that is serving, with what the request path needs next to it.
public final class LoadedSnapshot: Sendable {
    /// The snapshot.
    public let snapshot: Snapshot
    /// Client address resolution with the snapshot's and the configuration's trusted proxies.
    public let resolver: ClientAddressResolver
    /// The request headers the snapshot's routes look at (lower case): what a check request keeps.
    public let routeHeaderNames: [String]
    /// The identity of the file it was read from.
    public let identity: FileIdentity?
    /// When it was loaded, Unix seconds.
    public let loadedAt: Double
    /// Its pool members and health checks (``ProbePlan/fingerprint`` is the snapshot's health fingerprint).
    public let probePlan: ProbePlan
    /// Decision counters, see ``SidecarMetrics``.
    let counters: [Counter]

    init(snapshot: Snapshot, extraTrustedProxies: [IPPrefix], identity: FileIdentity?, loadedAt: Double, counters: [Counter]) {
        self.snapshot = snapshot
        self.resolver = ClientAddressResolver(trustedProxies: snapshot.policy.trustedProxies + extraTrustedProxies)
        self.routeHeaderNames = snapshot.policy.headerNames.map { snapshot.strings.string($0) }
        self.identity = identity
        self.loadedAt = loadedAt
        self.probePlan = ProbePlan(snapshot: snapshot)
        self.counters = counters
    }

    /// Whether `state`, published for pools with `fingerprint`, describes this snapshot's members.
    func accepts(_ state: HealthState, fingerprint: UInt64) -> Bool {
        fingerprint == probePlan.fingerprint && state.records.count == snapshot.policy.memberCount
    }

    /// Counts one decision.
    @inline(__always)
    func count(provider: Int32, outcome: DecisionOutcome) {
        let outcomes = DecisionOutcome.allCases.count
        let index = (Int(provider) &+ 1) &* outcomes &+ outcome.rawValue
        if index >= 0 && index < counters.count { counters[index].increment() }
    }
}

/// What a decision reads, in one immutable box: the serving snapshot and the health state decisions
/// use with it. A ``HealthView`` points into its ``HealthState``; holding the box while deciding
/// keeps that state alive, however often the store swaps in newer ones.
public final class ServingState: Sendable {
    /// The snapshot.
    public let loaded: LoadedSnapshot
    /// The health state, nil when decisions go without (every member up).
    public let health: HealthState?
    /// The view decisions pass: the state's bitmap, or ``HealthView/allUp``.
    public let view: HealthView

    init(loaded: LoadedSnapshot, health: HealthState?) {
        self.loaded = loaded
        self.health = health
        self.view = health?.view ?? .allUp
    }
}

/// The outcome of the latest reload attempts.
public struct ReloadStatus: Sendable, Hashable {
    /// Reloads that replaced the snapshot.
    public var successes = 0
    /// Reloads that were rejected (the previous snapshot kept serving).
    public var failures = 0
    /// Why the latest attempt failed, nil when it succeeded (or none was made).
    public var lastError: String?
    /// When the latest attempt was made, Unix seconds (0 for never).
    public var lastAttempt: Double = 0
}

/// Holds the serving snapshot and the health state decisions use, and swaps them atomically.
///
/// Readers on event loops call ``serving`` (a lock held for a pointer copy); a reload opens and validates
/// the new file completely before the swap, so a bad file is rejected whole and the old snapshot keeps serving.
/// A health state is kept across a reload only when the new snapshot has the same pools (health fingerprint).
public final class SnapshotStore: Sendable {
    /// The watched file.
    public let path: String
    let extraTrustedProxies: [IPPrefix]
    /// Sources older than this many seconds are logged as a warning on every load (nil: never).
    let maximumSourceAge: Double?
    let metrics: SidecarMetrics
    let logger: Logger
    private let state = Mutex<(serving: ServingState?, status: ReloadStatus, failedIdentity: FileIdentity?)>((nil, ReloadStatus(), nil))
    private let version = Atomic<Int>(0)

    /// A store for the snapshot at `path`; nothing is loaded until ``reload(reason:force:)``.
    public init(path: String, extraTrustedProxies: [IPPrefix] = [], maximumSourceAge: Double? = nil, metrics: SidecarMetrics,
                logger: Logger) {
        self.path = path
        self.extraTrustedProxies = extraTrustedProxies
        self.maximumSourceAge = maximumSourceAge
        self.metrics = metrics
        self.logger = logger
    }

    /// The serving snapshot, nil before the first successful load.
    public var current: LoadedSnapshot? {
        state.withLock { $0.serving?.loaded }
    }

    /// The serving snapshot with its health state, nil before the first successful load.
    public var serving: ServingState? {
        state.withLock { $0.serving }
    }

    /// Increases on every swap of the snapshot or the health state; lets readers cache ``serving`` cheaply.
    public var generation: Int {
        version.load(ordering: .acquiring)
    }

    /// The reload history.
    public var status: ReloadStatus {
        state.withLock { $0.status }
    }

    /// Whether `identity` differs from the serving snapshot's file and from the last rejected version.
    public func isNew(_ identity: FileIdentity) -> Bool {
        state.withLock { identity != $0.serving?.loaded.identity && identity != $0.failedIdentity }
    }

    /// Loads the file if it changed since the serving snapshot (or the last rejected version) was read.
    ///
    /// - Returns: true when a new snapshot now serves.
    @discardableResult
    public func reloadIfChanged() -> Bool {
        guard let identity = FileIdentity.of(path: path), isNew(identity) else { return false }
        return reload(reason: "file changed")
    }

    /// Opens, validates and swaps in the snapshot file.
    ///
    /// - Parameters:
    ///   - reason: logged with the outcome ("startup", "SIGHUP", "file changed").
    /// - Returns: true on success; on failure the previous snapshot keeps serving and the failure is counted.
    @discardableResult
    public func reload(reason: String) -> Bool {
        let now = Self.unixTime()
        let before = FileIdentity.of(path: path)
        do {
            let snapshot = try Snapshot.open(path: path)
            // A file replaced while it was read is attributed to the version read last; the next poll catches up.
            let identity = FileIdentity.of(path: path) == before ? before : nil
            let loaded = LoadedSnapshot(snapshot: snapshot, extraTrustedProxies: extraTrustedProxies, identity: identity,
                                        loadedAt: now, counters: metrics.decisionCounters(for: snapshot))
            let previous = state.withLock { state -> LoadedSnapshot? in
                let previous = state.serving
                // A data refresh keeps the health state; other pools make it meaningless.
                var health: HealthState?
                if let previous, let held = previous.health, loaded.accepts(held, fingerprint: previous.loaded.probePlan.fingerprint) {
                    health = held
                }
                state.serving = ServingState(loaded: loaded, health: health)
                metrics.health.show(plan: loaded.probePlan, records: health?.records)
                state.failedIdentity = nil
                state.status.successes += 1
                state.status.lastError = nil
                state.status.lastAttempt = now
                return previous?.loaded
            }
            version.add(1, ordering: .releasing)
            metrics.reloadSuccesses.increment()
            metrics.lastReloadSuccess.set(to: 1)
            metrics.snapshotLoaded(snapshot, at: now)
            logger.info("snapshot loaded", metadata: [
                "reason": "\(reason)", "path": "\(path)", "checksum": "\(String(snapshot.checksum, radix: 16))",
                "created_at": "\(snapshot.createdAt)", "prefixes_v4": "\(snapshot.prefixCounts.v4)",
                "prefixes_v6": "\(snapshot.prefixCounts.v6)", "bytes": "\(snapshot.byteCount)",
                "previous_checksum": "\(previous.map { String($0.snapshot.checksum, radix: 16) } ?? "-")",
            ])
            warnAboutStaleSources(snapshot, now: now)
            return true
        } catch {
            let message = "\(error)"
            let serving = state.withLock { state -> Bool in
                state.failedIdentity = before
                state.status.failures += 1
                state.status.lastError = message
                state.status.lastAttempt = now
                return state.serving != nil
            }
            metrics.reloadFailureResults.increment()
            metrics.reloadFailures.increment()
            metrics.lastReloadSuccess.set(to: 0)
            logger.error("snapshot rejected", metadata: [
                "reason": "\(reason)", "path": "\(path)", "error": "\(message)",
                "action": "\(serving ? "previous snapshot keeps serving" : "no snapshot loaded: not ready")",
            ])
            return false
        }
    }

    /// Logs one warning per source older than ``maximumSourceAge`` (once per load: the metric
    /// `redirector_source_age_seconds` is what alerts watch between loads).
    func warnAboutStaleSources(_ snapshot: Snapshot, now: Double) {
        guard let maximumSourceAge else { return }
        for source in snapshot.sources {
            let since = Double(source.dataTime(compiledAt: snapshot.createdAt))
            guard now - since > maximumSourceAge else { continue }
            logger.warning("source older than the maximum age", metadata: [
                "source": "\(source.name)", "format": "\(source.format)", "age_seconds": "\(Int64(now - since))",
                "maximum_seconds": "\(Int64(maximumSourceAge))", "measured_from": "\(source.dataTimeBasis)",
                "version": "\(source.publisherVersion ?? "-")", "path": "\(path)",
            ])
        }
    }

    /// Makes `health` (published for pools with `fingerprint`) the state decisions use, or drops the
    /// state held (nil: decisions go without health).
    ///
    /// - Returns: false, changing nothing, when no snapshot serves or `health` is for other pools.
    @discardableResult
    public func setHealth(_ health: HealthState?, fingerprint: UInt64) -> Bool {
        let swapped = state.withLock { state -> Bool in
            guard let serving = state.serving else { return false }
            if let health, !serving.loaded.accepts(health, fingerprint: fingerprint) { return false }
            state.serving = ServingState(loaded: serving.loaded, health: health)
            metrics.health.show(plan: serving.loaded.probePlan, records: health?.records)
            return true
        }
        if swapped { version.add(1, ordering: .releasing) }
        return swapped
    }

    /// Drops the health state held if it is stale at `now` (Unix milliseconds).
    ///
    /// - Returns: the dropped state, nil when none was held or it is still fresh.
    public func dropHealth(ifStaleAt now: Int64) -> HealthState? {
        let dropped = state.withLock { state -> HealthState? in
            guard let serving = state.serving, let health = serving.health, health.isStale(now: now) else { return nil }
            state.serving = ServingState(loaded: serving.loaded, health: nil)
            metrics.health.show(plan: serving.loaded.probePlan, records: nil)
            return health
        }
        if dropped != nil { version.add(1, ordering: .releasing) }
        return dropped
    }

    static func unixTime() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
