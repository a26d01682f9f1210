import RedirectorCore

/// What a probe got back: an answer's status, or a failure without one.
public enum ProbeResponse: Sendable, Hashable {
    /// The member answered with this status (acceptance is the check's business, not the client's).
    case status(Int)
    /// No usable answer: why (``MemberHealth/Failure/timeout``, ``MemberHealth/Failure/connect`` or
    /// ``MemberHealth/Failure/other``) and the error in words.
    case failed(MemberHealth.Failure, String)
}

/// Sends one health check request. The prober's state machine only sees this protocol, so tests
/// drive it with scripted answers and no network.
public protocol HealthProbeClient: Sendable {
    /// Probes `target` once, within `target.timeout`. Never throws: every failure is a ``ProbeResponse``.
    func probe(_ target: ProbeTarget) async -> ProbeResponse

    /// Releases the client's connections; called once, after the last probe.
    func shutdown() async
}
