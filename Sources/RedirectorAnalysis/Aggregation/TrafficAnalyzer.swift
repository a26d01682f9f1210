import RedirectorCore

/// Options for a run of ``TrafficAnalyzer``.
public struct AnalyzerOptions: Sendable {
    /// Extra trusted proxies, besides the snapshot's, for `X-Forwarded-For` resolution.
    public var trustedProxies: [IPPrefix]
    /// A prefix removed from every target before deciding (e.g. `/k8s-artifacts-prod` for bucket logs).
    public var stripPathPrefix: String?
    /// Most distinct hours kept for the time series; later hours are counted, not charted.
    public var maximumHours: Int
    /// Most malformed-line examples kept.
    public var maximumExamples: Int

    /// Creates options.
    public init(trustedProxies: [IPPrefix] = [], stripPathPrefix: String? = nil, maximumHours: Int = 24 * 366 * 3,
                maximumExamples: Int = 10) {
        self.trustedProxies = trustedProxies
        self.stripPathPrefix = stripPathPrefix
        self.maximumHours = maximumHours
        self.maximumExamples = maximumExamples
    }
}

/// Counters of one group: requests and bytes by what the decision would do.
public struct TrafficCounters: Sendable, Equatable {
    /// Requests (log lines analyzed).
    public var requests: UInt64 = 0
    /// Bytes sent.
    public var bytes: UInt64 = 0
    /// Requests the redirector would redirect to a mirror.
    public var redirectedRequests: UInt64 = 0
    /// Bytes of those requests: the egress the mirrors would take over.
    public var redirectedBytes: UInt64 = 0
    /// Requests the redirector would answer itself (`respond` routes: 404, 405, `/v2/` …).
    public var answeredRequests: UInt64 = 0
    /// Bytes of those requests.
    public var answeredBytes: UInt64 = 0

    /// Creates zero counters.
    public init() {}

    /// Requests still served by the origin.
    public var originRequests: UInt64 { requests &- redirectedRequests &- answeredRequests }
    /// Bytes still served by the origin.
    public var originBytes: UInt64 { bytes &- redirectedBytes &- answeredBytes }

    /// Adds `other`.
    public mutating func add(_ other: TrafficCounters) {
        requests &+= other.requests
        bytes &+= other.bytes
        redirectedRequests &+= other.redirectedRequests
        redirectedBytes &+= other.redirectedBytes
        answeredRequests &+= other.answeredRequests
        answeredBytes &+= other.answeredBytes
    }
}

/// Line-level statistics of a run.
public struct InputStatistics: Sendable, Equatable {
    /// Lines read (including skipped and malformed ones).
    public var lines: UInt64 = 0
    /// Lines analyzed as requests.
    public var records: UInt64 = 0
    /// Empty lines, comments and CSV headers.
    public var skipped: UInt64 = 0
    /// Malformed lines by ``MalformedReason/rawValue``.
    public var malformed: [UInt64] = Array(repeating: 0, count: MalformedReason.allCases.count)
    /// Requests whose client address field was present but not a valid address (analyzed as unmatched).
    public var invalidClientAddresses: UInt64 = 0
    /// Requests without any client address (analyzed as unmatched).
    public var missingClientAddresses: UInt64 = 0
    /// Requests without a time (not in the time series).
    public var untimedRecords: UInt64 = 0
    /// Requests whose hour fell beyond ``AnalyzerOptions/maximumHours`` distinct hours.
    public var hoursDropped: UInt64 = 0
    /// Uncompressed input bytes.
    public var inputBytes: Int64 = 0

    /// Creates zero statistics.
    public init() {}

    /// All malformed lines.
    public var malformedTotal: UInt64 { malformed.reduce(0, &+) }
}

/// A malformed line kept as an example.
public struct MalformedExample: Sendable, Equatable {
    /// Input name.
    public var input: String
    /// 1-based line number.
    public var line: Int
    /// Why it was rejected.
    public var reason: MalformedReason
    /// The start of the line, control bytes shown as `\xHH`.
    public var text: String
}

/// Streams log records through a snapshot's decision and aggregates them per provider, region and
/// ASN in one pass and bounded memory: groups are (matched attribute, ASN) pairs — at most the
/// snapshot's attributes plus the ASN table's ASNs — each with exact counters and a
/// ``DistinctCounter`` of client addresses; hours are bounded by ``AnalyzerOptions/maximumHours``.
///
/// Not thread-safe: use one analyzer per thread and merge their reports' inputs by running again.
public final class TrafficAnalyzer: LogRecordSink {
    /// The snapshot deciding every request.
    public let snapshot: Snapshot
    /// The fallback ASN source for clients the snapshot has no ASN for.
    public let asnTable: ASNTable?
    /// The options.
    public let options: AnalyzerOptions

    /// Line statistics so far.
    public var statistics: InputStatistics {
        var statistics = reader.statistics
        statistics.invalidClientAddresses = clients.invalid
        statistics.missingClientAddresses = clients.missing
        return statistics
    }
    /// Examples of malformed lines.
    public var examples: [MalformedExample] { reader.examples }
    /// Inputs analyzed, with their line counts and warnings.
    public var inputs: [(name: String, lines: Int, warning: String?)] { reader.inputs }

    private let reader: LogReader
    private var clients: LogClientResolution
    private let locationBuffer: UnsafeMutableRawBufferPointer
    private let stripper: TargetPrefixStripper
    private let providerCount: Int
    private let attributeProvider: [Int32]
    private let attributeASN: [UInt32]

    // Groups.
    private(set) var groupAttribute: [Int32] = []
    private(set) var groupASN: [UInt32] = []
    private(set) var counters: [TrafficCounters] = []
    private(set) var distinct: [DistinctCounter] = []
    private var attributeGroup: [Int32]
    private var groupMap = GroupMap()
    /// Direct-mapped cache of client hash → group for clients whose ASN comes from the ASN table.
    private static let cacheSize = 1 << 16
    private let clientCache: UnsafeMutableBufferPointer<(hash: UInt64, attribute: Int32, group: Int32)>

    // Time series: per hour, bytes per provider slot (slot 0 = no provider) then redirected bytes.
    private var hourIndex: [Int64: Int] = [:]
    private(set) var hours: [Int64] = []
    private(set) var hourValues: [UInt64] = []
    private var currentHour = Int64.min
    private var currentHourBase = -1
    private var hourStride: Int { providerCount &+ 2 }

    /// An analyzer deciding with `snapshot`.
    public init(snapshot: Snapshot, asnTable: ASNTable? = nil, options: AnalyzerOptions = AnalyzerOptions()) {
        self.snapshot = snapshot
        self.asnTable = asnTable
        self.options = options
        reader = LogReader(maximumExamples: options.maximumExamples)
        clients = LogClientResolution(snapshot: snapshot, extra: options.trustedProxies)
        locationBuffer = .allocate(byteCount: 8192, alignment: 8)
        clientCache = .allocate(capacity: TrafficAnalyzer.cacheSize)
        clientCache.initialize(repeating: (0, -2, 0))
        stripper = TargetPrefixStripper(options.stripPathPrefix)
        providerCount = snapshot.policy.providers.count
        var providers: [Int32] = []
        var asns: [UInt32] = []
        for index in 0..<snapshot.attributeCount {
            let attributes = snapshot.attributes(at: UInt32(index))
            providers.append(attributes.provider)
            asns.append(attributes.asn)
        }
        attributeProvider = providers
        attributeASN = asns
        attributeGroup = [Int32](repeating: -1, count: snapshot.attributeCount)
    }

    deinit {
        locationBuffer.deallocate()
        clientCache.deallocate()
    }

    // MARK: - Input

    /// Reads every line of `input` through `parser`. `progress` is called about every 65,536 lines.
    public func consume(_ input: LogInput, parser: inout any LogParser, progress: ((TrafficAnalyzer) -> Void)? = nil) throws {
        try reader.consume(input, parser: &parser, sink: self) { progress?(self) }
    }

    // MARK: - Hot path

    /// Decides and counts one record.
    @inline(__always)
    public func add(_ record: LogRecord) {
        let client = clients.client(of: record)
        let target = stripper.apply(record.target)
        let decision = snapshot.decide(client: client, method: record.method, target: target,
                                       location: locationBuffer)
        let attribute: Int32 = decision.attributeIndex.map { Int32(truncatingIfNeeded: $0) } ?? -1
        var hash: UInt64 = 0
        if let client {
            switch client {
            case .v4(let value): hash = AddressHash.v4(value)
            case .v6(let value): hash = AddressHash.v6(value)
            }
        }
        let group = groupIndex(attribute: attribute, asn: decision.attributes.asn, client: client, hash: hash)
        let bytes = record.bytes
        counters.withUnsafeMutableBufferPointer { all in
            all[group].requests &+= 1
            all[group].bytes &+= bytes
            switch decision.action {
            case .redirect:
                all[group].redirectedRequests &+= 1
                all[group].redirectedBytes &+= bytes
            case .respond:
                all[group].answeredRequests &+= 1
                all[group].answeredBytes &+= bytes
            case .pass:
                break
            }
        }
        if client != nil { distinct[group].insert(hash) }
        if record.time != LogRecord.unknownTime {
            let hour = record.time >= 0 ? record.time / 3600 : (record.time &- 3599) / 3600
            if hour != currentHour { selectHour(hour) }
            if currentHourBase >= 0 {
                let provider = attribute >= 0 ? Int(attributeProvider[Int(attribute)]) : -1
                hourValues.withUnsafeMutableBufferPointer { values in
                    values[currentHourBase &+ provider &+ 1] &+= bytes
                    if decision.action == .redirect { values[currentHourBase &+ providerCount &+ 1] &+= bytes }
                }
            } else {
                reader.statistics.hoursDropped &+= 1
            }
        } else {
            reader.statistics.untimedRecords &+= 1
        }
    }

    /// The group of a matched attribute (-1 for none) and the client's ASN.
    @inline(__always)
    private func groupIndex(attribute: Int32, asn: UInt32, client: IPAddress?, hash: UInt64) -> Int {
        var asn = asn
        if asn == 0, let asnTable, let client {
            // The group depends on the address alone: clients repeat, so remember recent answers.
            let slot = Int(truncatingIfNeeded: hash) & (TrafficAnalyzer.cacheSize &- 1)
            if clientCache[slot].hash == hash && clientCache[slot].attribute == attribute {
                return Int(clientCache[slot].group)
            }
            asn = asnTable.asn(of: client)
            let group = mappedGroup(attribute: attribute, asn: asn)
            clientCache[slot] = (hash, attribute, Int32(truncatingIfNeeded: group))
            return group
        } else if attribute >= 0 {
            // The attribute alone fixes the group.
            let cached = attributeGroup[Int(attribute)]
            if cached >= 0 { return Int(cached) }
            let group = newGroup(attribute: attribute, asn: asn)
            attributeGroup[Int(attribute)] = Int32(group)
            return group
        }
        return mappedGroup(attribute: attribute, asn: asn)
    }

    /// The group of an (attribute, ASN) pair from the map, created on first use.
    @inline(__always)
    private func mappedGroup(attribute: Int32, asn: UInt32) -> Int {
        let key = UInt64(UInt32(bitPattern: attribute &+ 1)) &<< 32 | UInt64(asn)
        if let group = groupMap.value(for: key) { return group }
        let group = newGroup(attribute: attribute, asn: asn)
        groupMap.insert(key, group)
        return group
    }

    private func newGroup(attribute: Int32, asn: UInt32) -> Int {
        groupAttribute.append(attribute)
        groupASN.append(asn)
        counters.append(TrafficCounters())
        distinct.append(DistinctCounter())
        return counters.count - 1
    }

    private func selectHour(_ hour: Int64) {
        currentHour = hour
        if let base = hourIndex[hour] {
            currentHourBase = base
            return
        }
        guard hours.count < options.maximumHours else {
            currentHourBase = -1
            return
        }
        let base = hourValues.count
        hourValues.append(contentsOf: repeatElement(0, count: hourStride))
        hours.append(hour)
        hourIndex[hour] = base
        currentHourBase = base
    }

    // MARK: - Results

    /// The provider index of an attribute (-1 for none).
    func provider(ofAttribute attribute: Int32) -> Int32 {
        attribute >= 0 && Int(attribute) < attributeProvider.count ? attributeProvider[Int(attribute)] : -1
    }

    /// The region of an attribute (empty for none).
    func region(ofAttribute attribute: Int32) -> String {
        guard attribute >= 0 && Int(attribute) < snapshot.attributeCount else { return "" }
        return snapshot.strings.string(snapshot.attributes(at: UInt32(attribute)).region)
    }

    /// The time series: sorted hours with bytes per provider slot (0 = none, 1… = providers) and redirected bytes.
    func hourlySeries() -> [(hour: Int64, bytesByProvider: [UInt64], redirectedBytes: UInt64)] {
        hours.indices.sorted { hours[$0] < hours[$1] }.map { index in
            let base = index * hourStride
            return (hours[index], Array(hourValues[base..<(base + providerCount + 1)]), hourValues[base + providerCount + 1])
        }
    }

    /// Approximate memory held by the aggregation, in bytes.
    public var memoryFootprint: Int {
        distinct.reduce(0) { $0 + $1.byteCount } + counters.count * (MemoryLayout<TrafficCounters>.stride + 16)
            + hourValues.count * 8 + groupMap.byteCount + attributeGroup.count * 4
            + TrafficAnalyzer.cacheSize * MemoryLayout<(UInt64, Int32, Int32)>.stride
    }
}

/// Open-addressing map from 64-bit group keys to group indices (linear probing, power-of-two size).
struct GroupMap {
    private var keys: [UInt64] = Array(repeating: GroupMap.empty, count: 64)
    private var values: [Int32] = Array(repeating: 0, count: 64)
    private var count = 0
    private static let empty = UInt64.max

    var byteCount: Int { keys.count * 12 }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) &>> 32) & mask
    }

    @inline(__always)
    func value(for key: UInt64) -> Int? {
        let mask = keys.count &- 1
        var index = GroupMap.slot(key, mask)
        while true {
            let stored = keys[index]
            if stored == key { return Int(values[index]) }
            if stored == GroupMap.empty { return nil }
            index = (index &+ 1) & mask
        }
    }

    mutating func insert(_ key: UInt64, _ value: Int) {
        if (count + 1) * 2 > keys.count { grow() }
        let mask = keys.count - 1
        var index = GroupMap.slot(key, mask)
        while keys[index] != GroupMap.empty && keys[index] != key { index = (index + 1) & mask }
        if keys[index] == GroupMap.empty { count += 1 }
        keys[index] = key
        values[index] = Int32(value)
    }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        keys = Array(repeating: GroupMap.empty, count: oldKeys.count * 2)
        values = Array(repeating: 0, count: oldKeys.count * 2)
        count = 0
        for index in oldKeys.indices where oldKeys[index] != GroupMap.empty {
            insert(oldKeys[index], Int(oldValues[index]))
        }
    }
}
