import RedirectorCore

/// What one request's decision comes to, as `redirector diff --logs` compares it between two
/// snapshots: the action, its HTTP status (0 for pass) and, for redirects, the target's base URL
/// (the chosen pool member's URL, which names the host). Respond routes compare by status alone.
public struct DecisionOutcome: Hashable, Sendable {
    /// Pass, redirect or respond.
    public var action: Decision.Action
    /// HTTP status; 0 for pass.
    public var status: Int32
    /// Base URL of the redirect target; empty unless redirecting.
    public var target: String

    /// Creates an outcome.
    public init(action: Decision.Action, status: Int32, target: String = "") {
        self.action = action
        self.status = status
        self.target = target
    }

    /// `pass`, `respond 405`, `redirect 302 https://mirror.example/`.
    public var label: String {
        switch action {
        case .pass: return "pass"
        case .respond: return "respond \(status)"
        case .redirect: return "redirect \(status) \(target)"
        }
    }
}

/// Requests and bytes of one (old outcome → new outcome) pair.
public struct OutcomeChange: Sendable, Equatable {
    /// The old snapshot's outcome.
    public var from: DecisionOutcome
    /// The new snapshot's outcome.
    public var to: DecisionOutcome
    /// Both redirect to the same target with the same status, but the `Location` differs (a
    /// changed rewrite template or `keepQuery`): the client still lands somewhere else.
    public var locationChanged: Bool
    /// Requests.
    public var requests: UInt64
    /// Logged response bytes of those requests.
    public var bytes: UInt64

    /// Creates a row.
    public init(from: DecisionOutcome, to: DecisionOutcome, locationChanged: Bool = false, requests: UInt64 = 0, bytes: UInt64 = 0) {
        self.from = from
        self.to = to
        self.locationChanged = locationChanged
        self.requests = requests
        self.bytes = bytes
    }

    /// Whether the request would be answered differently.
    public var isChange: Bool { from != to || locationChanged }
}

/// Streams log records through two snapshots' decisions in one pass — each line parsed once and
/// decided twice — and counts requests and bytes per (old outcome → new outcome) pair. Memory is
/// bounded by the pairs, at most the product of both snapshots' distinct outcomes, never by the input.
///
/// Clients are resolved with each snapshot's own `trustedProxies` (once when both trust the same
/// peers); the client-address statistics are the old snapshot's. Not thread-safe.
public final class DecisionDiffAnalyzer: LogRecordSink {
    /// The snapshot before.
    public let old: Snapshot
    /// The snapshot after.
    public let new: Snapshot
    /// The options (``AnalyzerOptions/trustedProxies``, ``AnalyzerOptions/stripPathPrefix`` and
    /// ``AnalyzerOptions/maximumExamples`` apply).
    public let options: AnalyzerOptions

    private let reader: LogReader
    private var oldClients: LogClientResolution
    private var newClients: LogClientResolution
    private let sharedResolution: Bool
    private let stripper: TargetPrefixStripper
    private let oldLocation: UnsafeMutableRawBufferPointer
    private let newLocation: UnsafeMutableRawBufferPointer
    private static let locationCapacity = 8192

    // Outcomes: per snapshot, a map from (action, status, target string offset) to a shared outcome index.
    private var oldOutcomeMap = GroupMap()
    private var newOutcomeMap = GroupMap()
    private(set) var outcomes: [DecisionOutcome] = []
    private var outcomeIndex: [DecisionOutcome: Int] = [:]
    // Pairs: (old outcome, new outcome, Location changed) → counters.
    private var pairMap = GroupMap()
    private(set) var pairKeys: [UInt64] = []
    private(set) var pairRequests: [UInt64] = []
    private(set) var pairBytes: [UInt64] = []

    /// An analyzer comparing `old` with `new`.
    public init(old: Snapshot, new: Snapshot, options: AnalyzerOptions = AnalyzerOptions()) {
        self.old = old
        self.new = new
        self.options = options
        reader = LogReader(maximumExamples: options.maximumExamples)
        oldClients = LogClientResolution(snapshot: old, extra: options.trustedProxies)
        newClients = LogClientResolution(snapshot: new, extra: options.trustedProxies)
        sharedResolution = oldClients.trusted == newClients.trusted
        stripper = TargetPrefixStripper(options.stripPathPrefix)
        oldLocation = .allocate(byteCount: DecisionDiffAnalyzer.locationCapacity, alignment: 8)
        newLocation = .allocate(byteCount: DecisionDiffAnalyzer.locationCapacity, alignment: 8)
    }

    deinit {
        oldLocation.deallocate()
        newLocation.deallocate()
    }

    /// Line statistics so far (client-address counters by the old snapshot's trusted proxies).
    public var statistics: InputStatistics {
        var statistics = reader.statistics
        statistics.invalidClientAddresses = oldClients.invalid
        statistics.missingClientAddresses = oldClients.missing
        return statistics
    }

    /// Examples of malformed lines.
    public var examples: [MalformedExample] { reader.examples }

    /// Inputs read, with their line counts and warnings.
    public var inputs: [(name: String, lines: Int, warning: String?)] { reader.inputs }

    /// Reads every line of `input` through `parser`. `progress` is called about every 65,536 lines.
    public func consume(_ input: LogInput, parser: inout any LogParser, progress: ((DecisionDiffAnalyzer) -> Void)? = nil) throws {
        try reader.consume(input, parser: &parser, sink: self) { progress?(self) }
    }

    /// Decides one record with both snapshots and counts its pair.
    @inline(__always)
    public func add(_ record: LogRecord) {
        let oldClient = oldClients.client(of: record)
        let newClient = sharedResolution ? oldClient : newClients.client(of: record)
        let target = stripper.apply(record.target)
        let before = old.decide(client: oldClient, method: record.method, target: target, location: oldLocation)
        let after = new.decide(client: newClient, method: record.method, target: target, location: newLocation)
        let from = outcome(before, of: old, map: &oldOutcomeMap)
        let to = outcome(after, of: new, map: &newOutcomeMap)
        var moved: UInt64 = 0
        if from == to && before.action == .redirect && !sameLocation(before.locationLength, after.locationLength) { moved = 1 }
        let key = UInt64(from) &<< 33 | UInt64(to) &<< 1 | moved
        let pair: Int
        if let known = pairMap.value(for: key) {
            pair = known
        } else {
            pair = pairKeys.count
            pairKeys.append(key)
            pairRequests.append(0)
            pairBytes.append(0)
            pairMap.insert(key, pair)
        }
        pairRequests.withUnsafeMutableBufferPointer { $0[pair] &+= 1 }
        pairBytes.withUnsafeMutableBufferPointer { $0[pair] &+= record.bytes }
    }

    /// Whether both `Location` values are the same (written only when they fit; longer ones compare by length).
    @inline(__always)
    private func sameLocation(_ oldLength: Int, _ newLength: Int) -> Bool {
        guard oldLength == newLength else { return false }
        guard oldLength <= DecisionDiffAnalyzer.locationCapacity else { return true }
        return ByteScanning.hasBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(oldLocation)[..<oldLength]),
                                     in: UnsafeRawBufferPointer(newLocation), at: 0)
    }

    /// The shared index of `decision`'s outcome, interned on first sight.
    @inline(__always)
    private func outcome(_ decision: Decision, of snapshot: Snapshot, map: inout GroupMap) -> Int {
        let target = decision.action == .redirect ? decision.target : .empty
        let status = decision.action == .pass ? 0 : UInt64(UInt32(bitPattern: decision.status) & 0xFFFF)
        let key = UInt64(UInt32(bitPattern: decision.action.rawValue) & 3) &<< 48 | status &<< 32 | UInt64(target.offset)
        if let index = map.value(for: key) { return index }
        let outcome = DecisionOutcome(action: decision.action, status: decision.action == .pass ? 0 : decision.status,
                                      target: snapshot.strings.string(target))
        let index: Int
        if let known = outcomeIndex[outcome] {
            index = known
        } else {
            index = outcomes.count
            outcomes.append(outcome)
            outcomeIndex[outcome] = index
        }
        map.insert(key, index)
        return index
    }

    /// Every pair seen, as rows (unordered).
    func changes() -> [OutcomeChange] {
        pairKeys.indices.map { pair in
            let key = pairKeys[pair]
            return OutcomeChange(from: outcomes[Int(key >> 33)], to: outcomes[Int((key >> 1) & 0xFFFF_FFFF)],
                                 locationChanged: key & 1 == 1, requests: pairRequests[pair], bytes: pairBytes[pair])
        }
    }
}
