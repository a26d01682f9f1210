import RedirectorCore

/// One pool member with a health check, in the prober's own terms (strings and durations).
public struct ProbeTarget: Sendable, Hashable {
    /// The member's ``PoolMember/slot``: its record in health states.
    public var slot: Int
    /// Name of the member's pool, `-` for a pool of a single URL.
    public var pool: String
    /// The member's base URL (what redirects go to).
    public var member: String
    /// The URL probed.
    public var url: String
    /// `GET` or `HEAD`.
    public var method: String
    /// Time between probes.
    public var interval: Duration
    /// Longest time one probe may take.
    public var timeout: Duration
    /// Consecutive successes that bring a down member up (at least 1).
    public var rise: Int
    /// Consecutive failures that take an up member down (at least 1).
    public var fall: Int
    /// Statuses that count as success; empty means 200–399.
    public var expectedStatuses: [UInt16]

    /// Creates a target.
    public init(slot: Int, pool: String, member: String, url: String, method: String = "GET",
                interval: Duration, timeout: Duration, rise: Int = 1, fall: Int = 1, expectedStatuses: [UInt16] = []) {
        self.slot = slot
        self.pool = pool
        self.member = member
        self.url = url
        self.method = method
        self.interval = interval
        self.timeout = timeout
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.expectedStatuses = expectedStatuses
    }

    /// Whether an answer with `status` is a success (``HealthCheck/accepts(status:expected:)``).
    public func accepts(status: Int) -> Bool {
        HealthCheck.accepts(status: status, expected: expectedStatuses)
    }
}

/// A member of the policy, probed or not: the labels its metrics and logs carry.
public struct ProbeMember: Sendable, Hashable {
    /// The member's slot.
    public var slot: Int
    /// Name of its pool, `-` for a pool of a single URL.
    public var pool: String
    /// Its base URL.
    public var member: String

    /// Creates a member description.
    public init(slot: Int, pool: String, member: String) {
        self.slot = slot
        self.pool = pool
        self.member = member
    }
}

/// What a prober does for one snapshot's pools: every member, the checked ones with their checks,
/// and the publishing cadence the health state format asks for.
public struct ProbePlan: Sendable, Hashable {
    /// ``Snapshot/healthFingerprint`` of the pools: a state is valid for snapshots with this value.
    public var fingerprint: UInt64
    /// Every member in slot order (``Policy/memberCount`` of them).
    public var members: [ProbeMember]
    /// The members that have a health check, in slot order.
    public var targets: [ProbeTarget]

    /// The plan for `snapshot`'s pools.
    public init(snapshot: Snapshot) {
        var members: [ProbeMember] = []
        var targets: [ProbeTarget] = []
        let strings = snapshot.strings
        for pool in snapshot.policy.pools {
            let name = strings.string(pool.name)
            let poolName = name.isEmpty ? "-" : name
            for member in pool.members {
                let url = strings.string(member.url)
                let slot = Int(member.slot)
                members.append(ProbeMember(slot: slot, pool: poolName, member: url))
                guard let check = member.health else { continue }
                let method = strings.string(check.method).uppercased()
                targets.append(ProbeTarget(
                    slot: slot, pool: poolName, member: url, url: strings.string(check.url),
                    method: method == "HEAD" ? "HEAD" : "GET",
                    interval: .milliseconds(Int64(max(1, check.intervalMilliseconds))),
                    timeout: .milliseconds(Int64(max(1, check.timeoutMilliseconds))),
                    rise: Int(check.rise), fall: Int(check.fall), expectedStatuses: check.expectedStatuses))
            }
        }
        members.sort { $0.slot < $1.slot }
        targets.sort { $0.slot < $1.slot }
        self.init(fingerprint: snapshot.healthFingerprint, members: members, targets: targets)
    }

    /// A plan from its parts (tests; ``init(snapshot:)`` otherwise).
    public init(fingerprint: UInt64, members: [ProbeMember], targets: [ProbeTarget]) {
        self.fingerprint = fingerprint
        self.members = members
        self.targets = targets
    }

    /// Number of records of its health states.
    public var memberCount: Int { members.count }

    /// How often the state is republished without a change: max(1 s, the shortest interval / 2).
    public var heartbeat: Duration {
        let shortest = targets.map(\.interval).min() ?? .seconds(2)
        return max(.seconds(1), shortest / 2)
    }

    /// How long a published state stays valid: max(3 × the longest interval, 10 s).
    public var staleAfter: Duration {
        let longest = targets.map(\.interval).max() ?? .zero
        return max(.seconds(10), longest * 3)
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
    }
}
