import RedirectorCore

/// `redirector update`'s sanity limit: a URL source whose prefix count fell by more than a
/// share since the installed snapshot (a truncated or emptied upstream file that still parses)
/// is refused unless forced.
public struct ShrinkRule: Sendable {
    /// The largest drop accepted, in percent of the installed count.
    public var maximumPercent: Double

    /// A rule accepting drops up to `maximumPercent`.
    public init(maximumPercent: Double) {
        self.maximumPercent = maximumPercent
    }

    /// A source that shrank too much.
    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        /// The source's URL.
        public var url: String
        /// Its prefix count in the installed snapshot.
        public var before: Int
        /// Its prefix count now.
        public var after: Int

        /// Creates a record.
        public init(url: String, before: Int, after: Int) {
            self.url = url
            self.before = before
            self.after = after
        }

        /// "prefixes fell from B to A (P% fewer)".
        public var description: String {
            "prefixes fell from \(before) to \(after) (\(100 * (before - after) / max(before, 1))% fewer)"
        }
    }

    /// The URL sources of `compiled` whose prefix count fell by more than the limit against the
    /// record of the same URL in `installed` (a URL read as several files counts as their sum).
    /// Sources new to the snapshot have nothing to compare with.
    public func violations(installed: [SourceProvenance], compiled: [SourceProvenance]) -> [Violation] {
        func counts(_ sources: [SourceProvenance]) -> [String: Int] {
            sources.reduce(into: [:]) { counts, source in
                if let url = source.url { counts[url, default: 0] += source.prefixCount }
            }
        }
        let before = counts(installed)
        let after = counts(compiled)
        var seen: Set<String> = []
        return compiled.compactMap { source in
            guard let url = source.url, seen.insert(url).inserted, let old = before[url], old > 0 else { return nil }
            let new = after[url] ?? 0
            guard Double(old - new) > Double(old) * maximumPercent / 100 else { return nil }
            return Violation(url: url, before: old, after: new)
        }
    }
}
