/// The brute-force oracle: checks every entry, keeps the longest that contains the address.
///
/// Obviously correct and O(n) per lookup; tests compare the fast matchers against it.
public struct LinearScanMatcher: PrefixMatcher, Sendable {
    private let entries: [(prefix: IPPrefix, value: UInt32)]

    /// Creates the oracle. For duplicate prefixes the first entry wins, as in ``PoptrieBuilder``.
    public init(entries: [(prefix: IPPrefix, value: UInt32)]) {
        self.entries = entries
    }

    /// The longest entry containing `address`.
    public func longestMatch(_ address: IPAddress) -> PrefixMatch? {
        var best: PrefixMatch?
        for entry in entries where entry.prefix.contains(address) {
            if entry.prefix.length > best?.prefix.length ?? -1 {
                best = PrefixMatch(prefix: entry.prefix, value: entry.value)
            }
        }
        return best
    }
}
