/// Finds the client address of a request the way nginx's realip module does with
/// `real_ip_recursive on`.
///
/// The TCP peer is the client unless it is a trusted proxy. From a trusted peer, the
/// `X-Forwarded-For` list is walked from the right, skipping trusted entries; the first untrusted
/// entry is the client. A malformed entry stops the walk: the last trusted hop is used, so garbage
/// can never select an arbitrary address. `X-Real-IP` and Envoy's `x-envoy-external-address` are
/// believed only from trusted peers.
public struct ClientAddressResolver: Sendable {
    private var trusted4 = BinaryRadixTree(family: .v4)
    private var trusted6 = BinaryRadixTree(family: .v6)
    /// Most X-Forwarded-For entries examined, so thousands of entries cost a bounded amount of work.
    public static let maximumHops = 32

    /// A resolver trusting `proxies`.
    public init(trustedProxies proxies: [IPPrefix]) {
        for prefix in proxies {
            trusted4.insert(prefix, value: 0)
            trusted6.insert(prefix, value: 0)
        }
    }

    /// Whether `address` is a trusted proxy.
    public func isTrusted(_ address: IPAddress) -> Bool {
        switch address {
        case .v4: return trusted4.longestMatch(address) != nil
        case .v6: return trusted6.longestMatch(address) != nil
        }
    }

    /// The client address.
    /// - Parameters:
    ///   - peer: the TCP peer.
    ///   - forwardedFor: every `X-Forwarded-For` header value, in order.
    ///   - realIP: the `X-Real-IP` or `x-envoy-external-address` value, used when no usable XFF entry exists.
    public func resolve(peer: IPAddress, forwardedFor: [String], realIP: String? = nil) -> IPAddress {
        guard isTrusted(peer) else { return peer }
        var current = peer
        var hops = 0
        for header in forwardedFor.reversed() {
            for entry in header.split(separator: ",").reversed() where !entry.trimmingSpaces.isEmpty {
                hops += 1
                guard hops <= ClientAddressResolver.maximumHops,
                      let address = IPAddress(entry.trimmingSpaces) else { return current }
                current = address
                if !isTrusted(address) { return address }
            }
        }
        if forwardedFor.isEmpty, let realIP, let address = IPAddress(realIP.trimmingSpaces) {
            return address
        }
        return current
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpaces: SubSequence {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start, self[index(before: end)] == " " || self[index(before: end)] == "\t" { end = index(before: end) }
        return self[start..<end]
    }
}
