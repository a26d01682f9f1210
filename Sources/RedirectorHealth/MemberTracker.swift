import RedirectorCore

/// What one probe found, before rise/fall: an answer's status or why there was none.
public struct ProbeOutcome: Sendable, Hashable {
    /// ``MemberHealth/Failure/none`` for a success; otherwise why the probe failed.
    public var failure: MemberHealth.Failure
    /// Status of the answer, 0 when there was none.
    public var status: Int
    /// How long the probe took.
    public var latency: Duration
    /// The failure in words, empty after a success.
    public var error: String

    /// Creates an outcome.
    public init(failure: MemberHealth.Failure, status: Int = 0, latency: Duration = .zero, error: String = "") {
        self.failure = failure
        self.status = status
        self.latency = latency
        self.error = error
    }

    /// Whether the probe succeeded.
    public var succeeded: Bool { failure == .none }
}

/// A member that went up or down.
public struct HealthTransition: Sendable, Hashable {
    /// State before.
    public var from: MemberHealth.State
    /// State after.
    public var to: MemberHealth.State
    /// The record after the probe that caused it.
    public var record: MemberHealth
}

/// The rise/fall state machine of one checked member.
///
/// A member starts ``MemberHealth/State/up`` (a starting prober never takes traffic away);
/// `fall` failures in a row take it down and `rise` successes in a row bring it back. Every
/// probe updates the record's last status, latency and error, a change of state also `since`.
public struct MemberTracker: Sendable, Hashable {
    /// The member's current record.
    public private(set) var record: MemberHealth
    /// Successes in a row needed to come up.
    public let rise: Int
    /// Failures in a row needed to go down.
    public let fall: Int
    /// Successes in a row so far (while down).
    public private(set) var successes = 0
    /// Failures in a row so far (while up).
    public private(set) var failures = 0

    /// A member that is up since `now` (Unix milliseconds).
    public init(rise: Int, fall: Int, now: Int64) {
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        record = MemberHealth(state: .up, since: now)
    }

    /// Applies one probe's outcome at `now` (Unix milliseconds).
    ///
    /// - Returns: the transition when the member changed state, nil otherwise.
    public mutating func apply(_ outcome: ProbeOutcome, now: Int64) -> HealthTransition? {
        record.failure = outcome.failure
        record.status = UInt16(clamping: outcome.status)
        record.latencyMicroseconds = UInt32(clamping: outcome.latency.microseconds)
        record.error = outcome.succeeded ? "" : Self.truncated(outcome.error)
        let before = record.state
        if outcome.succeeded {
            failures = 0
            successes &+= 1
            if before == .down && successes >= rise { record.state = .up }
        } else {
            successes = 0
            failures &+= 1
            if before != .down && failures >= fall { record.state = .down }
        }
        guard record.state != before else { return nil }
        record.since = now
        successes = 0
        failures = 0
        return HealthTransition(from: before, to: record.state, record: record)
    }

    /// `error` cut to ``HealthState/maximumErrorLength`` bytes at a character boundary.
    static func truncated(_ error: String) -> String {
        guard error.utf8.count > HealthState.maximumErrorLength else { return error }
        var result = ""
        for character in error {
            guard result.utf8.count + character.utf8.count <= HealthState.maximumErrorLength else { break }
            result.append(character)
        }
        return result
    }
}

extension Duration {
    /// Whole microseconds (rounded down, 0 for negative durations).
    var microseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(0, seconds &* 1_000_000 &+ attoseconds / 1_000_000_000_000)
    }
}
