/// An IPv4 or IPv6 address.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are represented as `.v4`: the contract matches
/// them as the IPv4 address they carry. Translated (`::ffff:0:a.b.c.d`) and IPv4-compatible
/// (`::a.b.c.d`) forms stay IPv6.
public enum IPAddress: Hashable, Sendable {
    /// An IPv4 address as a host-order integer (`0x0A000001` is 10.0.0.1).
    case v4(UInt32)
    /// An IPv6 address as a host-order integer (the first byte is the most significant).
    case v6(UInt128)

    /// Parses strict `inet_pton` text (see ``AddressParser``); nil for anything else.
    public init?(_ text: some StringProtocol) {
        var text = String(text)
        guard let address = text.withUTF8({ AddressParser.parseAddress(UnsafeRawBufferPointer($0)) }) else {
            return nil
        }
        self = address
    }

    /// Builds an address from 4 or 16 network-order bytes; nil for any other length.
    /// Sixteen bytes holding an IPv4-mapped address yield `.v4`.
    public init?(networkBytes bytes: UnsafeRawBufferPointer) {
        switch bytes.count {
        case 4:
            self = .v4(UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)))
        case 16:
            let high = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            self = IPAddress.unmapped(UInt128(high) &<< 64 | UInt128(low))
        default:
            return nil
        }
    }

    /// `.v4` for an IPv4-mapped IPv6 value, `.v6` otherwise.
    @inline(__always)
    static func unmapped(_ value: UInt128) -> IPAddress {
        if value &>> 32 == 0xffff {
            return .v4(UInt32(truncatingIfNeeded: value))
        }
        return .v6(value)
    }

    /// The address's family.
    public var family: AddressFamily {
        switch self {
        case .v4: return .v4
        case .v6: return .v6
        }
    }

    /// Writes the address in network byte order to the first 4 or 16 bytes of `buffer`, which
    /// must have room for them.
    public func storeNetworkBytes(into buffer: UnsafeMutableRawBufferPointer) {
        switch self {
        case .v4(let value):
            buffer.storeBytes(of: value.bigEndian, toByteOffset: 0, as: UInt32.self)
        case .v6(let value):
            buffer.storeBytes(of: UInt64(truncatingIfNeeded: value &>> 64).bigEndian, toByteOffset: 0, as: UInt64.self)
            buffer.storeBytes(of: UInt64(truncatingIfNeeded: value).bigEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    /// The address in network byte order: 4 or 16 bytes.
    public var networkBytes: [UInt8] {
        switch self {
        case .v4(let value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value &>> (24 - 8 * $0)) }
        case .v6(let value):
            return (0..<16).map { UInt8(truncatingIfNeeded: value &>> (120 - 8 * $0)) }
        }
    }
}

extension IPAddress: CustomStringConvertible {
    /// Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed).
    public var description: String {
        switch self {
        case .v4(let value):
            return (0..<4).map { String((value &>> (24 - 8 * $0)) & 0xff) }.joined(separator: ".")
        case .v6(let value):
            let groups = (0..<8).map { UInt16(truncatingIfNeeded: value &>> (112 - 16 * $0)) }
            var bestStart = -1
            var bestLength = 1
            var index = 0
            while index < 8 {
                guard groups[index] == 0 else {
                    index += 1
                    continue
                }
                var end = index
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            }
            let hex = groups.map { String($0, radix: 16) }
            guard bestStart >= 0 else { return hex.joined(separator: ":") }
            let head = hex[..<bestStart].joined(separator: ":")
            let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
            return head + "::" + tail
        }
    }
}

extension IPAddress: Comparable {
    /// IPv4 orders before IPv6; within a family, numeric order.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v6(let a), .v6(let b)): return a < b
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        }
    }
}
