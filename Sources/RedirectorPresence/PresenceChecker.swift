import NIOConcurrencyHelpers
import NIOCore
import RedirectorCore
import RedirectorHealth

/// What a presence check found.
public enum PresenceResult: Sendable, Hashable {
    /// A 2xx answer: the mirror has the object.
    case present
    /// A 404, 403 or 410: it has not.
    case absent(status: Int)
    /// Anything else (another status, a redirect, a timeout, a failed connection, the mirror's
    /// concurrency limit reached): nobody knows, so the mirror is not used for this request.
    /// The reason is one word: `status-NNN`, `timeout`, `connect`, `other` or `busy`.
    case unknown(reason: String)

    /// `present`, `absent` or `unknown`: the metric label.
    public var label: String {
        switch self {
        case .present: return "present"
        case .absent: return "absent"
        case .unknown: return "unknown"
        }
    }

    /// The result of an answer with `status`.
    public static func of(status: Int) -> PresenceResult {
        switch status {
        case 200...299: return .present
        case 403, 404, 410: return .absent(status: status)
        default: return .unknown(reason: "status-\(status)")
        }
    }
}

/// One check as explanations show it.
public struct PresenceCheck: Sendable, Hashable, CustomStringConvertible {
    /// The URL checked: the `Location` the client would have got.
    public var url: String
    /// What was found.
    public var result: PresenceResult
    /// Whether the answer came from the cache (no request made for this decision).
    public var cached: Bool
    /// Time the decision waited for it, nanoseconds (0 for a cached answer).
    public var waitedNanoseconds: UInt64

    /// Creates a check record.
    public init(url: String, result: PresenceResult, cached: Bool, waitedNanoseconds: UInt64) {
        self.url = url
        self.result = result
        self.cached = cached
        self.waitedNanoseconds = waitedNanoseconds
    }

    /// `url(result,cached)` or `url(result,waited)`, without spaces, e.g.
    /// `https://m1.example/x(present,cached)`, `https://m2.example/x(absent-404,2.4ms)`.
    public var description: String {
        var text = "\(url)(\(result.label)"
        switch result {
        case .present: break
        case .absent(let status): text += "-\(status)"
        case .unknown(let reason): text += "-\(reason)"
        }
        if cached { return text + ",cached)" }
        let tenths = (waitedNanoseconds &+ 50_000) / 100_000
        return "\(text),\(tenths / 10).\(tenths % 10)ms)"
    }
}

/// Sends the HEAD of a presence check. ``HTTPProbeClient`` is the real one; tests script answers.
public protocol PresenceClient: Sendable {
    /// A HEAD of `url` within `timeout`, redirects not followed. Never throws.
    func head(url: String, timeout: Duration) async -> ProbeResponse
}

extension HTTPProbeClient: PresenceClient {}

/// What a checker tells metrics.
public protocol PresenceObserver: Sendable {
    /// A HEAD finished after `nanoseconds` with `result`.
    func checked(_ result: PresenceResult, nanoseconds: UInt64)
    /// A decision found an answer in the cache (`hit`) or had to wait for a check.
    func lookedUp(hit: Bool)
    /// The cache dropped its least recently used entry to make room.
    func evicted()
}

/// Checks that mirrors hold objects, for every decision of a server: answers are cached
/// (``PresenceSettings``: present and absent with their own TTLs, a bounded LRU), one HEAD is in
/// flight per URL however many requests want it (the others wait for its answer), and each
/// mirror has at most ``PresenceSettings/concurrencyPerMirror`` checks in flight — a request
/// beyond that gets "unknown" at once and goes on to the next step rather than queueing.
/// Unknown answers are not cached: the next request asks again.
public final class PresenceChecker: Sendable {
    private struct State {
        var cache: PresenceCache
        /// The requests waiting for the HEAD in flight to each URL.
        var waiting: [String: [(request: CheckedContinuation<PresenceCheck, Never>, started: UInt64)]] = [:]
        /// Checks in flight per mirror base URL.
        var inFlight: [String: Int] = [:]
    }

    private let client: any PresenceClient
    private let observer: (any PresenceObserver)?
    private let state: NIOLockedValueBox<State>
    private let clock: @Sendable () -> UInt64

    /// A checker sending its HEADs with `client`; `clock` gives monotonic nanoseconds.
    public init(client: any PresenceClient, observer: (any PresenceObserver)? = nil, cacheEntries: Int = Int(PresenceSettings.default.cacheEntries),
                clock: @escaping @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }) {
        self.client = client
        self.observer = observer
        self.clock = clock
        state = NIOLockedValueBox(State(cache: PresenceCache(capacity: cacheEntries)))
    }

    /// Entries in the cache.
    public var cachedCount: Int { state.withLockedValue { $0.cache.count } }

    /// The cached answer for `url`, nil when there is none (nothing is sent). A hit counts as one.
    public func cached(url: String, settings: PresenceSettings) -> PresenceCheck? {
        let now = clock()
        let present = state.withLockedValue { state -> Bool? in
            guard state.cache.capacity == Int(settings.cacheEntries) else { return nil }
            return state.cache.lookup(url, now: now)
        }
        guard let present else { return nil }
        observer?.lookedUp(hit: true)
        return PresenceCheck(url: url, result: present ? .present : .absent(status: 404), cached: true, waitedNanoseconds: 0)
    }

    /// Whether `url` (an object on the mirror with base URL `mirror`) is there, with `settings`
    /// (whose cache size, if it differs from the cache's, starts a new cache).
    public func check(url: String, mirror: String, settings: PresenceSettings) async -> PresenceCheck {
        let started = clock()
        return await withCheckedContinuation { continuation in
            enum Next { case answered(PresenceCheck), joined, send }
            let next = state.withLockedValue { state -> Next in
                if state.cache.capacity != Int(settings.cacheEntries) {
                    state.cache = PresenceCache(capacity: Int(settings.cacheEntries))
                }
                if let present = state.cache.lookup(url, now: started) {
                    return .answered(PresenceCheck(url: url, result: present ? .present : .absent(status: 404), cached: true, waitedNanoseconds: 0))
                }
                if state.waiting[url] != nil {
                    state.waiting[url]?.append((continuation, started))
                    return .joined
                }
                guard state.inFlight[mirror, default: 0] < Int(settings.concurrencyPerMirror) else {
                    let result = PresenceResult.unknown(reason: "busy")  // concurrencyPerMirror checks in flight there
                    return .answered(PresenceCheck(url: url, result: result, cached: false, waitedNanoseconds: 0))
                }
                state.waiting[url] = [(continuation, started)]
                state.inFlight[mirror, default: 0] += 1
                return .send
            }
            switch next {
            case .answered(let check):
                observer?.lookedUp(hit: check.cached)
                continuation.resume(returning: check)
            case .joined:
                observer?.lookedUp(hit: false)
            case .send:
                observer?.lookedUp(hit: false)
                Task { await self.send(url: url, mirror: mirror, settings: settings, started: started) }
            }
        }
    }

    /// Sends the HEAD, remembers its answer and wakes every request waiting for it.
    private func send(url: String, mirror: String, settings: PresenceSettings, started: UInt64) async {
        let timeout = Duration.milliseconds(Int64(settings.timeoutMilliseconds))
        let result: PresenceResult
        switch await client.head(url: url, timeout: timeout) {
        case .status(let status): result = .of(status: status)
        case .failed(let failure, _): result = .unknown(reason: failure.name)
        }
        let finished = clock()
        observer?.checked(result, nanoseconds: finished &- started)
        let (waiters, evicted) = state.withLockedValue { state -> ([(request: CheckedContinuation<PresenceCheck, Never>, started: UInt64)], Int) in
            let before = state.cache.evictions
            switch result {
            case .present:
                state.cache.store(url, present: true, expires: finished &+ UInt64(settings.presentTTLMilliseconds) &* 1_000_000)
            case .absent where settings.absentTTLMilliseconds > 0:
                state.cache.store(url, present: false, expires: finished &+ UInt64(settings.absentTTLMilliseconds) &* 1_000_000)
            case .absent, .unknown:
                break
            }
            state.inFlight[mirror, default: 1] -= 1
            if state.inFlight[mirror] == 0 { state.inFlight[mirror] = nil }
            return (state.waiting.removeValue(forKey: url) ?? [], state.cache.evictions - before)
        }
        if evicted > 0 { for _ in 0..<evicted { observer?.evicted() } }
        for waiter in waiters {
            let check = PresenceCheck(url: url, result: result, cached: false, waitedNanoseconds: finished &- min(finished, waiter.started))
            waiter.request.resume(returning: check)
        }
    }
}
