import Logging
import RedirectorCore
import ServiceLifecycle

/// Runs a ``HealthProber`` for whatever snapshot currently serves, restarting it when the pools change.
///
/// Every `pollInterval` it asks `snapshot` for the current snapshot; when its ``Snapshot/healthFingerprint``
/// differs from the one being probed (a new snapshot with other pools or checks), the old prober stops
/// and a new one starts (its members start up again). A snapshot with the same pools, a data refresh,
/// keeps the running prober and its states. Stops on graceful shutdown or cancellation, then shuts
/// the probe client down.
public struct HealthProbeService: Service {
    /// The snapshot to probe for, nil while none is loaded.
    public let snapshot: @Sendable () -> Snapshot?
    /// Where states are also written, nil for memory only.
    public let stateFile: String?
    /// How often `snapshot` is asked.
    public let pollInterval: Duration
    let logger: Logger
    let observer: (any HealthProbeObserver)?
    let makeClient: @Sendable () -> any HealthProbeClient
    let onPlan: @Sendable (ProbePlan) -> Void
    let onPublish: @Sendable (HealthPublication) -> Void

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - snapshot: the current snapshot.
    ///   - stateFile: also write every state there.
    ///   - observer: told of every probe (metrics).
    ///   - makeClient: the probe client, made once when the service runs (AsyncHTTPClient by default).
    ///   - onPlan: called before a prober starts for a plan.
    ///   - onPublish: called with every published state.
    public init(snapshot: @escaping @Sendable () -> Snapshot?, stateFile: String?, logger: Logger,
                pollInterval: Duration = .seconds(1), observer: (any HealthProbeObserver)? = nil,
                makeClient: @escaping @Sendable () -> any HealthProbeClient = { HTTPProbeClient() },
                onPlan: @escaping @Sendable (ProbePlan) -> Void = { _ in },
                onPublish: @escaping @Sendable (HealthPublication) -> Void = { _ in }) {
        self.snapshot = snapshot
        self.stateFile = stateFile
        self.pollInterval = pollInterval
        self.logger = logger
        self.observer = observer
        self.makeClient = makeClient
        self.onPlan = onPlan
        self.onPublish = onPublish
    }

    /// Probes until graceful shutdown or cancellation.
    public func run() async throws {
        let client = makeClient()
        await cancelWhenGracefulShutdown {
            await self.supervise(client: client)
        }
        await client.shutdown()
    }

    private func supervise(client: any HealthProbeClient) async {
        var running: (fingerprint: UInt64, task: Task<Void, Never>)?
        while !Task.isCancelled {
            if let snapshot = snapshot() {
                let fingerprint = snapshot.healthFingerprint
                if fingerprint != running?.fingerprint {
                    if let previous = running {
                        previous.task.cancel()
                        await previous.task.value
                    }
                    let plan = ProbePlan(snapshot: snapshot)
                    logger.info("probing", metadata: [
                        "members": "\(plan.memberCount)", "checked": "\(plan.targets.count)",
                        "fingerprint": "\(String(fingerprint, radix: 16))", "heartbeat": "\(plan.heartbeat)",
                        "stale_after": "\(plan.staleAfter)", "state_file": "\(stateFile ?? "-")",
                        "restart": "\(running != nil)",
                    ])
                    onPlan(plan)
                    let prober = HealthProber(plan: plan, client: client, stateFile: stateFile, logger: logger, observer: observer)
                    prober.subscribe(onPublish)
                    running = (fingerprint, Task { await prober.run() })
                }
            }
            do { try await Task.sleep(for: pollInterval) } catch { break }
        }
        if let running {
            running.task.cancel()
            await running.task.value
        }
    }
}
