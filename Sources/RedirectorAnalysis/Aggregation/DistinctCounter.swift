import Glibc

/// Counts distinct 64-bit hashes in bounded memory: exactly while the set is small, then with a
/// HyperLogLog sketch (precision 14: 16 KiB, standard error about 0.8 %).
///
/// The exact set is an open-addressing table of the hashes themselves; past ``exactLimit``
/// entries (when the table would outgrow the sketch) it is replayed into the sketch. Estimates use
/// Ertl's improved estimator ("New cardinality estimation algorithms for HyperLogLog sketches",
/// 2017), which needs neither empirical bias tables nor a switch to linear counting.
public struct DistinctCounter: Sendable {
    /// Largest exact set; beyond it the counter is a sketch.
    public static let exactLimit = 1024
    /// Sketch precision: 2^14 registers.
    public static let precision = 14
    private static let registerCount = 1 << precision

    private var slots: [UInt64]
    private var registers: [UInt8] = []
    private var exactCount = 0

    /// An empty counter.
    public init() {
        slots = [UInt64](repeating: 0, count: 8)
    }

    /// Whether ``count`` is exact.
    public var isExact: Bool { registers.isEmpty }

    /// Memory held, in bytes.
    public var byteCount: Int { slots.count * 8 + registers.count }

    /// Adds a hash (0 is folded into 1).
    @inline(__always)
    public mutating func insert(_ hash: UInt64) {
        let value = hash == 0 ? 1 : hash
        if registers.isEmpty {
            insertExact(value)
        } else {
            insertSketch(value)
        }
    }

    @inline(__always)
    private mutating func insertExact(_ value: UInt64) {
        let mask = slots.count &- 1
        var index = Int(truncatingIfNeeded: value) & mask
        while true {
            let slot = slots[index]
            if slot == value { return }
            if slot == 0 { break }
            index = (index &+ 1) & mask
        }
        slots[index] = value
        exactCount &+= 1
        if exactCount &* 2 > slots.count { grow() }
    }

    private mutating func grow() {
        let old = slots
        if exactCount > DistinctCounter.exactLimit {
            registers = [UInt8](repeating: 0, count: DistinctCounter.registerCount)
            slots = []
            for value in old where value != 0 { insertSketch(value) }
            return
        }
        slots = [UInt64](repeating: 0, count: old.count * 2)
        let mask = slots.count - 1
        for value in old where value != 0 {
            var index = Int(truncatingIfNeeded: value) & mask
            while slots[index] != 0 { index = (index &+ 1) & mask }
            slots[index] = value
        }
    }

    @inline(__always)
    private mutating func insertSketch(_ value: UInt64) {
        let index = Int(truncatingIfNeeded: value &>> UInt64(64 &- DistinctCounter.precision))
        let rest = value &<< UInt64(DistinctCounter.precision) | (UInt64(1) &<< UInt64(DistinctCounter.precision &- 1))
        let rank = UInt8(truncatingIfNeeded: rest.leadingZeroBitCount &+ 1)
        if rank > registers[index] { registers[index] = rank }
    }

    /// Adds every element of `other`.
    public mutating func merge(_ other: DistinctCounter) {
        if other.registers.isEmpty {
            for value in other.slots where value != 0 { insert(value) }
            return
        }
        if registers.isEmpty {
            let old = slots
            registers = other.registers
            slots = []
            for value in old where value != 0 { insertSketch(value) }
            return
        }
        for index in 0..<registers.count where other.registers[index] > registers[index] {
            registers[index] = other.registers[index]
        }
    }

    /// The number of distinct hashes: exact while ``isExact``, else the sketch's estimate.
    public var count: Int {
        guard !registers.isEmpty else { return exactCount }
        let q = 64 - DistinctCounter.precision
        let m = Double(DistinctCounter.registerCount)
        var histogram = [Int](repeating: 0, count: q + 2)
        for register in registers { histogram[min(Int(register), q + 1)] += 1 }
        var z = m * DistinctCounter.tau(1 - Double(histogram[q + 1]) / m)
        for k in stride(from: q, through: 1, by: -1) {
            z = 0.5 * (z + Double(histogram[k]))
        }
        z += m * DistinctCounter.sigma(Double(histogram[0]) / m)
        guard z > 0, z.isFinite else { return 0 }
        let estimate = (m * m / (2 * log(2.0))) / z
        return Int(estimate.rounded())
    }

    /// σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k-1).
    private static func sigma(_ value: Double) -> Double {
        guard value < 1 else { return .infinity }
        var x = value
        var y = 1.0
        var z = value
        while true {
            x *= x
            let previous = z
            z += x * y
            y += y
            if z == previous { return z }
        }
    }

    /// τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^-k))² 2^-k) / 3.
    private static func tau(_ value: Double) -> Double {
        guard value > 0, value < 1 else { return 0 }
        var x = value
        var y = 1.0
        var z = 1 - value
        while true {
            x = x.squareRoot()
            let previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
            if z == previous { return z / 3 }
        }
    }
}

/// 64-bit hashes of client addresses for ``DistinctCounter``: a bijection for IPv4, so distinct
/// IPv4 clients never collide while counts are exact.
public enum AddressHash {
    /// The SplitMix64 finalizer: a bijective mix with full avalanche.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z &>> 31)
    }

    /// The hash of an IPv4 address.
    @inline(__always)
    public static func v4(_ value: UInt32) -> UInt64 {
        mix(UInt64(value) | 0x1_0000_0000)
    }

    /// The hash of an IPv6 address.
    @inline(__always)
    public static func v6(_ value: UInt128) -> UInt64 {
        mix(mix(UInt64(truncatingIfNeeded: value &>> 64)) ^ UInt64(truncatingIfNeeded: value) ^ 0x2_0000_0000)
    }
}
