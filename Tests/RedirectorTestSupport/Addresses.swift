import RedirectorCore

/// A prefix from text the test knows to be valid.
public func prefix(_ text: String) -> IPPrefix {
    guard let prefix = IPPrefix(text) else { fatalError("test prefix '\(text)' does not parse") }
    return prefix
}

/// An address from text the test knows to be valid.
public func address(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("test address '\(text)' does not parse") }
    return address
}

/// Every address worth probing around a prefix: its first and last address and their outside neighbours.
public func boundaryProbes(_ prefix: IPPrefix) -> [IPAddress] {
    var probes: [IPAddress] = [prefix.network, prefix.lastAddress]
    switch (prefix.network, prefix.lastAddress) {
    case (.v4(let first), .v4(let last)):
        if first > 0 { probes.append(.v4(first - 1)) }
        if last < UInt32.max { probes.append(.v4(last + 1)) }
        if last > first { probes.append(.v4(first + 1)); probes.append(.v4(last - 1)) }
    case (.v6(let first), .v6(let last)):
        if first > 0 { probes.append(.v6(first - 1)) }
        if last < UInt128.max { probes.append(.v6(last + 1)) }
        if last > first { probes.append(.v6(first + 1)); probes.append(.v6(last - 1)) }
    default:
        break
    }
    return probes
}

/// A random address inside `prefix`.
public func randomAddress(in prefix: IPPrefix, using generator: inout SeededGenerator) -> IPAddress {
    switch prefix.network {
    case .v4(let network):
        let host = prefix.length == 32 ? 0 : UInt32(truncatingIfNeeded: generator.next()) & ~IPPrefix.mask32(prefix.length)
        return .v4(network | host)
    case .v6(let network):
        let host = prefix.length == 128 ? 0 : generator.next128() & ~IPPrefix.mask128(prefix.length)
        return .v6(network | host)
    }
}
