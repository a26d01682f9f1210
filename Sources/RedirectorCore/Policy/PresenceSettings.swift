/// How backends check that a mirror holds an object before a `verify` route redirects there
/// (a HEAD of the exact `Location`), and how long they remember the answers.
///
/// The defaults follow registry.k8s.io (a 5 s timeout), with what it lacks: absences are
/// remembered too, briefly, and the cache is bounded.
public struct PresenceSettings: Hashable, Sendable {
    /// Time a check may take, connection included, milliseconds.
    public var timeoutMilliseconds: UInt32
    /// How long a "present" answer is reused, milliseconds.
    public var presentTTLMilliseconds: UInt32
    /// How long an "absent" answer (404, 403, 410) is reused, milliseconds; 0 keeps none.
    public var absentTTLMilliseconds: UInt32
    /// Most answers remembered (least recently used ones go first).
    public var cacheEntries: UInt32
    /// Most checks in flight to one mirror at once; a request beyond it skips the mirror.
    public var concurrencyPerMirror: UInt32
    /// Most checks one request makes; when none found the object, the routes after the
    /// verifying ones decide (a chain through every region's bucket would be a check per region).
    public var maxChecks: UInt32

    /// 5 s timeout, present for 1 h, absent for 1 min, 100,000 entries, 32 checks per mirror,
    /// 3 checks per request.
    public static let `default` = PresenceSettings(
        timeoutMilliseconds: 5_000, presentTTLMilliseconds: 3_600_000, absentTTLMilliseconds: 60_000,
        cacheEntries: 100_000, concurrencyPerMirror: 32, maxChecks: 3)

    /// The largest ``cacheEntries``: about 3 GB of cache in the sidecar at some 320 bytes an entry
    /// (docs/presence.md, "Memory").
    public static let cacheLimit: UInt32 = 10_000_000

    /// The largest ``maxChecks`` (what the NGINX module keeps per request).
    public static let checkLimit: UInt32 = 16

    /// Creates settings.
    public init(timeoutMilliseconds: UInt32, presentTTLMilliseconds: UInt32, absentTTLMilliseconds: UInt32,
                cacheEntries: UInt32, concurrencyPerMirror: UInt32, maxChecks: UInt32) {
        self.timeoutMilliseconds = timeoutMilliseconds
        self.presentTTLMilliseconds = presentTTLMilliseconds
        self.absentTTLMilliseconds = absentTTLMilliseconds
        self.cacheEntries = cacheEntries
        self.concurrencyPerMirror = concurrencyPerMirror
        self.maxChecks = maxChecks
    }
}
