/// An IP network: an address and a prefix length, with host bits cleared.
public struct IPPrefix: Hashable, Sendable {
    /// The network address (host bits are always zero).
    public let network: IPAddress
    /// The prefix length: 0–32 for IPv4, 0–128 for IPv6.
    public let length: Int

    /// Builds a prefix, clearing host bits. Lengths out of range are clamped to the family's width.
    public init(network address: IPAddress, length: Int) {
        switch address {
        case .v4(let value):
            let length = min(max(length, 0), 32)
            self.network = .v4(value & IPPrefix.mask32(length))
            self.length = length
        case .v6(let value):
            let length = min(max(length, 0), 128)
            self.network = .v6(value & IPPrefix.mask128(length))
            self.length = length
        }
    }

    /// Parses `address/length` strictly (see ``AddressParser``).
    /// - Returns: the prefix and whether the text had host bits set (they are cleared).
    public static func parse(_ text: some StringProtocol) -> (prefix: IPPrefix, hadHostBits: Bool)? {
        var text = String(text)
        return text.withUTF8 { parse(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Parses `address/length` from bytes, as ``parse(_:)`` does from text.
    public static func parse(bytes: UnsafeRawBufferPointer) -> (prefix: IPPrefix, hadHostBits: Bool)? {
        guard let (address, length) = AddressParser.parsePrefix(bytes) else { return nil }
        let prefix = IPPrefix(network: address, length: length)
        return (prefix, prefix.network != address)
    }

    /// Parses `address/length`, accepting host bits (they are cleared); nil for malformed text.
    public init?(_ text: some StringProtocol) {
        guard let parsed = IPPrefix.parse(text) else { return nil }
        self = parsed.prefix
    }

    /// Whether `address` lies in this network (never across families).
    public func contains(_ address: IPAddress) -> Bool {
        switch (network, address) {
        case (.v4(let net), .v4(let value)): return value & IPPrefix.mask32(length) == net
        case (.v6(let net), .v6(let value)): return value & IPPrefix.mask128(length) == net
        default: return false
        }
    }

    /// Whether `other` lies wholly in this network (itself included; never across families).
    public func covers(_ other: IPPrefix) -> Bool {
        length <= other.length && contains(other.network)
    }

    /// The last address of the network.
    public var lastAddress: IPAddress {
        switch network {
        case .v4(let net): return .v4(net | ~IPPrefix.mask32(length))
        case .v6(let net): return .v6(net | ~IPPrefix.mask128(length))
        }
    }

    /// The network mask of an IPv4 prefix length (0–32).
    @inline(__always)
    public static func mask32(_ length: Int) -> UInt32 {
        length <= 0 ? 0 : ~UInt32(0) &<< UInt32(32 &- min(length, 32))
    }

    /// The network mask of an IPv6 prefix length (0–128).
    @inline(__always)
    public static func mask128(_ length: Int) -> UInt128 {
        length <= 0 ? 0 : ~UInt128(0) &<< UInt128(128 &- min(length, 128))
    }
}

extension IPPrefix: CustomStringConvertible {
    /// `network/length`, e.g. `192.0.2.0/24`.
    public var description: String { "\(network)/\(length)" }
}

extension IPPrefix: Comparable {
    /// By family, then network, then length (shorter first).
    public static func < (lhs: IPPrefix, rhs: IPPrefix) -> Bool {
        if lhs.network != rhs.network { return lhs.network < rhs.network }
        return lhs.length < rhs.length
    }
}
