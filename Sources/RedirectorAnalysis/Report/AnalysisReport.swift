import RedirectorCore

/// One row of a report: a provider, a provider's region, a provider's ASN, or the total.
public struct TrafficRow: Sendable, Equatable {
    /// Provider name; empty for clients of no provider.
    public var provider: String
    /// Region (region rows only); empty when unknown.
    public var region: String
    /// ASN (ASN rows only); 0 when unknown.
    public var asn: UInt32
    /// Requests and bytes by outcome.
    public var counters: TrafficCounters
    /// Distinct client addresses.
    public var distinctClients: Int
    /// Whether ``distinctClients`` is exact (else a HyperLogLog estimate, ±0.8 %).
    public var distinctClientsExact: Bool

    /// Creates a row.
    public init(provider: String, region: String = "", asn: UInt32 = 0, counters: TrafficCounters = TrafficCounters(),
                distinctClients: Int = 0, distinctClientsExact: Bool = true) {
        self.provider = provider
        self.region = region
        self.asn = asn
        self.counters = counters
        self.distinctClients = distinctClients
        self.distinctClientsExact = distinctClientsExact
    }

    /// Share of requests that would be redirected (0 when there are none).
    public var redirectedRequestShare: Double {
        counters.requests == 0 ? 0 : Double(counters.redirectedRequests) / Double(counters.requests)
    }

    /// Share of bytes that would be redirected.
    public var redirectedByteShare: Double {
        counters.bytes == 0 ? 0 : Double(counters.redirectedBytes) / Double(counters.bytes)
    }
}

/// One hour of the time series.
public struct HourBucket: Sendable, Equatable {
    /// Start of the hour, Unix seconds.
    public var start: Int64
    /// Bytes per series of ``AnalysisReport/seriesNames`` (same order).
    public var bytes: [UInt64]
    /// Bytes that would be redirected in that hour.
    public var redirectedBytes: UInt64
}

/// Everything a run found: the model every output (terminal, CSV, JSON, HTML) renders.
public struct AnalysisReport: Sendable {
    /// The snapshot's path.
    public var snapshotPath: String
    /// The snapshot's checksum.
    public var snapshotChecksum: UInt64
    /// The log format name.
    public var format: String
    /// The ASN table files, if any.
    public var asnTables: [String]
    /// Inputs with their line counts and warnings.
    public var inputs: [(name: String, lines: Int, warning: String?)]
    /// Line statistics.
    public var statistics: InputStatistics
    /// Examples of malformed lines.
    public var examples: [MalformedExample]
    /// All analyzed requests.
    public var total: TrafficRow
    /// One row per provider seen (the empty name for clients of no provider), by bytes, descending.
    public var providers: [TrafficRow]
    /// One row per provider and region seen, by bytes, descending.
    public var regions: [TrafficRow]
    /// One row per provider and ASN seen, by bytes, descending.
    public var asns: [TrafficRow]
    /// Names of the time series: providers with traffic, then `""` for no provider if it had any.
    public var seriesNames: [String]
    /// Hourly buckets, in time order.
    public var hours: [HourBucket]
    /// Seconds the run took.
    public var elapsedSeconds: Double
    /// Approximate aggregation memory, in bytes.
    public var memoryBytes: Int

    /// ASN rows of clients that matched no provider: whom to talk to next.
    public func unmatchedASNs(limit: Int = 20) -> [TrafficRow] {
        Array(asns.filter { $0.provider.isEmpty }.prefix(limit))
    }

    /// Lines per second over the whole run.
    public var linesPerSecond: Double {
        elapsedSeconds > 0 ? Double(statistics.lines) / elapsedSeconds : 0
    }
}

extension TrafficAnalyzer {
    /// Rolls the groups up into a report.
    public func report(format: String, elapsedSeconds: Double) -> AnalysisReport {
        struct Accumulator {
            var row: TrafficRow
            var distinct = DistinctCounter()
        }
        var total = Accumulator(row: TrafficRow(provider: ""))
        var byProvider: [Int32: Accumulator] = [:]
        var byRegion: [String: Accumulator] = [:]
        var byASN: [UInt64: Accumulator] = [:]
        for group in counters.indices {
            let attribute = groupAttribute[group]
            let providerIndex = provider(ofAttribute: attribute)
            let providerName = snapshot.providerName(providerIndex)
            let region = region(ofAttribute: attribute)
            let asn = groupASN[group]
            let groupCounters = counters[group]
            let groupDistinct = distinct[group]

            total.row.counters.add(groupCounters)
            total.distinct.merge(groupDistinct)

            byProvider[providerIndex, default: Accumulator(row: TrafficRow(provider: providerName))].row.counters.add(groupCounters)
            byProvider[providerIndex]?.distinct.merge(groupDistinct)

            let regionKey = "\(providerIndex)\u{0}\(region)"
            byRegion[regionKey, default: Accumulator(row: TrafficRow(provider: providerName, region: region))].row.counters.add(groupCounters)
            byRegion[regionKey]?.distinct.merge(groupDistinct)

            let asnKey = UInt64(UInt32(bitPattern: providerIndex)) << 32 | UInt64(asn)
            byASN[asnKey, default: Accumulator(row: TrafficRow(provider: providerName, asn: asn))].row.counters.add(groupCounters)
            byASN[asnKey]?.distinct.merge(groupDistinct)
        }
        func finish(_ accumulator: Accumulator) -> TrafficRow {
            var row = accumulator.row
            row.distinctClients = accumulator.distinct.count
            row.distinctClientsExact = accumulator.distinct.isExact
            return row
        }
        func ordered(_ rows: some Sequence<Accumulator>) -> [TrafficRow] {
            rows.map(finish).sorted {
                if $0.counters.bytes != $1.counters.bytes { return $0.counters.bytes > $1.counters.bytes }
                if $0.counters.requests != $1.counters.requests { return $0.counters.requests > $1.counters.requests }
                if $0.provider != $1.provider { return $0.provider < $1.provider }
                if $0.region != $1.region { return $0.region < $1.region }
                return $0.asn < $1.asn
            }
        }
        let providers = ordered(byProvider.values)

        // Series: providers by bytes, no-provider last.
        let series = hourlySeries()
        var slots: [Int] = []
        var names: [String] = []
        for row in providers where !row.provider.isEmpty {
            if let index = snapshot.providerIndex(named: row.provider) {
                slots.append(Int(index) + 1)
                names.append(row.provider)
            }
        }
        if providers.contains(where: { $0.provider.isEmpty }) {
            slots.append(0)
            names.append("")
        }
        let hours = series.map { hour in
            HourBucket(start: hour.hour * 3600, bytes: slots.map { hour.bytesByProvider[$0] }, redirectedBytes: hour.redirectedBytes)
        }
        return AnalysisReport(
            snapshotPath: snapshot.path, snapshotChecksum: snapshot.checksum, format: format,
            asnTables: asnTable?.sources ?? [], inputs: inputs, statistics: statistics, examples: examples,
            total: finish(total), providers: providers, regions: ordered(byRegion.values), asns: ordered(byASN.values),
            seriesNames: names, hours: hours, elapsedSeconds: elapsedSeconds, memoryBytes: memoryFootprint)
    }
}
