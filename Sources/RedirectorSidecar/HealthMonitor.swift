import Logging
import RedirectorCore
import RedirectorHealth
import ServiceLifecycle
import Synchronization

/// Keeps the health state decisions use current and fresh.
///
/// From a state file (`--health-state` without `--probe`): every ``interval`` it looks at the file's
/// identity (device, inode, size, modification time) and reads it again when that, or the served
/// snapshot's pools, changed. From the in-process prober (`--probe`): every published state goes
/// through ``accept(_:)``. Either way a state that goes stale while held is dropped.
///
/// A state that cannot be used — missing, unreadable, corrupt, another version, for other pools,
/// stale, future-dated — leaves decisions without health (every member up, never "all down"), is
/// counted in `redirector_health_state_errors_total{reason}` and logged once per distinct reason.
public final class HealthMonitor: Service, Sendable {
    /// Where the states come from.
    public enum Source: Sendable, Hashable {
        /// A file an external prober writes.
        case file(String)
        /// The prober in this process (``accept(_:)``).
        case prober
    }

    /// The store whose health state is kept.
    public let store: SnapshotStore
    /// Where the states come from.
    public let source: Source
    /// Time between checks.
    public let interval: Duration
    let logger: Logger
    private let state = Mutex<(read: ReadKey?, problem: HealthStateFileProblem?, inUse: Bool)>((nil, nil, false))

    /// What a read saw: the file version and the pools it was checked against.
    private struct ReadKey: Hashable {
        var identity: FileIdentity?
        var fingerprint: UInt64
    }

    /// A monitor for `store`'s health state from `source`, checking every `interval` (1 s by default).
    public init(store: SnapshotStore, source: Source, interval: Duration = .seconds(1), logger: Logger) {
        self.store = store
        self.source = source
        self.interval = interval
        self.logger = logger
    }

    private var metrics: HealthMetrics { store.metrics.health }

    /// Checks every ``interval`` until graceful shutdown or cancellation.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.poll(now: unixMilliseconds())
                do { try await Task.sleep(for: self.interval) } catch { return }
            }
        }
    }

    /// One check at `now` (Unix milliseconds): drops a stale state, and reads a changed state file.
    public func poll(now: Int64) {
        if let dropped = store.dropHealth(ifStaleAt: now) {
            report(.stale, "the health state in use went stale: written \((now - dropped.writtenAt) / 1000) s ago, "
                + "valid for \(dropped.staleAfter / 1000) s (is the prober running?)")
        }
        guard case .file(let path) = source, let loaded = store.current else { return }
        let fingerprint = loaded.probePlan.fingerprint
        let key = ReadKey(identity: FileIdentity.of(path: path), fingerprint: fingerprint)
        let isNew = state.withLock { state -> Bool in
            guard state.read != key else { return false }
            state.read = key
            return true
        }
        guard isNew else { return }
        do throws(HealthStateFileError) {
            let health = try HealthStateFile.read(path: path, fingerprint: fingerprint,
                                                  memberCount: loaded.snapshot.policy.memberCount, now: now)
            // False only when another snapshot came in meanwhile: its fingerprint makes the next poll read again.
            if store.setHealth(health, fingerprint: fingerprint) { inUse(health) }
        } catch {
            store.setHealth(nil, fingerprint: fingerprint)
            report(error.problem, error.message)
        }
    }

    /// Makes a state the in-process prober published the one decisions use (ignored when it is for
    /// pools other than the served snapshot's, as while the prober restarts for a new snapshot).
    public func accept(_ publication: HealthPublication) {
        if store.setHealth(publication.state, fingerprint: publication.fingerprint) { inUse(publication.state) }
    }

    private func inUse(_ health: HealthState) {
        let announce = state.withLock { state -> Bool in
            defer {
                state.problem = nil
                state.inUse = true
            }
            return state.problem != nil || !state.inUse
        }
        guard announce else { return }
        logger.info("health state in use", metadata: [
            "source": "\(sourceName)", "members": "\(health.records.count)", "down": "\(health.downCount)",
            "written_at_ms": "\(health.writtenAt)",
        ])
    }

    private func report(_ problem: HealthStateFileProblem, _ message: String) {
        metrics.countStateError(problem)
        let isNew = state.withLock { state -> Bool in
            defer {
                state.problem = problem
                state.inUse = false
            }
            return state.problem != problem
        }
        guard isNew else { return }
        logger.error("health state not used: deciding without health (every member up)", metadata: [
            "source": "\(sourceName)", "reason": "\(problem.rawValue)", "error": "\(message)",
        ])
    }

    private var sourceName: String {
        switch source {
        case .file(let path): return path
        case .prober: return "prober"
        }
    }
}
