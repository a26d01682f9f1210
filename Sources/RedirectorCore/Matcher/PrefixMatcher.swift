/// The result of a longest-prefix match: the most specific prefix covering an address and its value.
public struct PrefixMatch: Hashable, Sendable {
    /// The matched prefix.
    public var prefix: IPPrefix
    /// The value stored with it (an attribute index in a snapshot).
    public var value: UInt32

    /// Creates a match.
    public init(prefix: IPPrefix, value: UInt32) {
        self.prefix = prefix
        self.value = value
    }
}

/// Anything that answers longest-prefix-match queries over a set of `(prefix, value)` entries.
///
/// ``Poptrie`` is the fast implementation; ``LinearScanMatcher`` is its brute-force oracle and
/// ``BinaryRadixTree`` the classic 1-bit trie baseline (NGINX's `geo` structure).
public protocol PrefixMatcher {
    /// The longest prefix containing `address`, or nil when none does.
    func longestMatch(_ address: IPAddress) -> PrefixMatch?
}

/// Prefix length and value packed into one 32-bit word, as the matchers store them.
///
/// `0` means "no match"; otherwise bits 8–30 hold `value + 1` and bits 0–7 the prefix length.
/// Values are therefore limited to ``maximumValue``.
public enum PackedMatch {
    /// The largest value a matcher can store.
    public static let maximumValue: UInt32 = (1 << 23) - 2

    /// Packs a value and prefix length.
    @inline(__always)
    public static func pack(value: UInt32, length: Int) -> UInt32 {
        (value &+ 1) &<< 8 | UInt32(truncatingIfNeeded: length) & 0xff
    }

    /// The value of a packed match (meaningless for 0).
    @inline(__always)
    public static func value(_ packed: UInt32) -> UInt32 { (packed &>> 8) &- 1 }

    /// The prefix length of a packed match.
    @inline(__always)
    public static func length(_ packed: UInt32) -> Int { Int(packed & 0xff) }

    /// Unpacks a match for `address`; nil for 0.
    public static func unpack(_ packed: UInt32, for address: IPAddress) -> PrefixMatch? {
        guard packed != 0 else { return nil }
        return PrefixMatch(prefix: IPPrefix(network: address, length: length(packed)), value: value(packed))
    }
}
