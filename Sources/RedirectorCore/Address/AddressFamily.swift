/// IPv4 or IPv6: which key width a matcher, prefix or address has.
///
/// The raw value is the family's conventional number (4 or 6), as snapshots, the C ABI's
/// `rdr_decision.family` and exports write it.
public enum AddressFamily: Int, Hashable, Sendable, CaseIterable {
    /// 32-bit addresses.
    case v4 = 4
    /// 128-bit addresses.
    case v6 = 6

    /// Bits in an address: 32 or 128.
    @inlinable
    public var bitWidth: Int { self == .v4 ? 32 : 128 }

    /// Bytes in an address: 4 or 16.
    @inlinable
    public var byteCount: Int { bitWidth / 8 }

    /// "IPv4" or "IPv6", for messages.
    public var name: String { self == .v4 ? "IPv4" : "IPv6" }
}
