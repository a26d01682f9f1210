import RedirectorCore

/// A prefix with its would-be owner, before conflicts are resolved.
struct Candidate {
    var prefix: IPPrefix
    /// Provider index, -1 for none (an ASN-table prefix whose ASN no provider claims).
    var provider: Int32
    var region: String
    var asn: UInt32
    /// Position in reading order, the rule's last tie-breaker.
    var order: Int
    /// Index of the source file it came from in the snapshot's provenance.
    var source: UInt16 = ProvenanceSection.noSource
    /// Whether it came from the ASN table (its provider is the one claiming its ASN).
    var fromASNTable = false
}

/// Providers in declaration order, with their config entries.
struct Providers {
    var names: [String] = []
    var configs: [ProviderConfig?] = []
    var index: [String: Int32] = [:]

    /// Appends a provider.
    mutating func add(_ name: String, config: ProviderConfig?) {
        index[name] = Int32(names.count)
        names.append(name)
        configs.append(config)
    }

    /// The index of `name`, added (without config) when a source names it first.
    @discardableResult
    mutating func addIfMissing(_ name: String) -> Int32 {
        if let existing = index[name] { return existing }
        add(name, config: nil)
        return Int32(names.count - 1)
    }

    /// A provider's configured priority; no provider ranks below every provider.
    func priority(_ provider: Int32) -> Int32 {
        provider < 0 ? Int32.min : configs[Int(provider)]?.priority ?? 0
    }
}

/// The prefix (and ASN) ownership rule, documented in README.md. When several entries claim the
/// same prefix the winner is, in order, (1) the entry of the provider with the higher `priority`,
/// (2) an entry with a provider over one without, (3) an entry with a region over one without,
/// (4) the provider declared first, (5) the entry read first. ASN claims have no region or
/// reading order of their own, so for them the rule stops at (4).
struct OwnershipRule {
    let providers: Providers

    /// One side of a comparison: what the rule looks at.
    private struct Claimant {
        var provider: Int32
        var hasRegion: Bool
        var order: Int
    }

    /// The rule itself, stated once.
    private func prefers(_ a: Claimant, over b: Claimant) -> Bool {
        let (priorityA, priorityB) = (providers.priority(a.provider), providers.priority(b.provider))
        if priorityA != priorityB { return priorityA > priorityB }
        if (a.provider >= 0) != (b.provider >= 0) { return a.provider >= 0 }
        if a.hasRegion != b.hasRegion { return a.hasRegion }
        if a.provider != b.provider { return a.provider < b.provider }
        return a.order <= b.order
    }

    /// Whether provider `a` beats provider `b` for an ASN.
    func prefers(provider a: Int32, over b: Int32) -> Bool {
        prefers(Claimant(provider: a, hasRegion: false, order: 0), over: Claimant(provider: b, hasRegion: false, order: 0))
    }

    /// Whether candidate `a` beats candidate `b` for their prefix.
    func prefers(_ a: Candidate, over b: Candidate) -> Bool {
        prefers(Claimant(provider: a.provider, hasRegion: !a.region.isEmpty, order: a.order),
                over: Claimant(provider: b.provider, hasRegion: !b.region.isEmpty, order: b.order))
    }

    /// One owner per prefix, sorted by prefix. Conflicts between two providers are reported in
    /// reading order (the first 50, then a count).
    func resolve(_ candidates: [Candidate], report: inout [String]) -> [Candidate] {
        // Sorting groups each prefix's claims (in reading order) without hashing every prefix.
        let sorted = candidates.sorted { $0.prefix < $1.prefix || ($0.prefix == $1.prefix && $0.order < $1.order) }
        var owned: [Candidate] = []
        owned.reserveCapacity(sorted.count)
        var conflicts: [(order: Int, winner: Candidate, loser: Candidate, kept: Int32)] = []
        var conflictCount = 0
        for candidate in sorted {
            guard let winner = owned.last, winner.prefix == candidate.prefix else {
                owned.append(candidate)
                continue
            }
            let keep = prefers(winner, over: candidate)
            if winner.provider != candidate.provider && winner.provider >= 0 && candidate.provider >= 0 {
                conflictCount += 1
                conflicts.append((candidate.order, winner, candidate, keep ? winner.provider : candidate.provider))
            }
            if !keep { owned[owned.count - 1] = candidate }
        }
        conflicts.sort { $0.order < $1.order }
        report.append(contentsOf: conflicts.prefix(50).map { conflict in
            "conflict: \(conflict.loser.prefix) is claimed by \(providers.names[Int(conflict.winner.provider)]) and "
                + "\(providers.names[Int(conflict.loser.provider)]); \(providers.names[Int(conflict.kept)]) wins by the ownership rule"
        })
        if conflictCount > 50 { report.append("conflict: … and \(conflictCount - 50) more prefixes claimed by two providers") }
        return droppingRedundantASNPrefixes(owned, report: &report)
    }

    /// Drops each ASN-table prefix nested in a prefix of the same provider from the provider's own
    /// sources: it would only take its addresses away from the covering prefix, which says more
    /// (a region; a cloud's published range over its announced routes). `owned` is sorted, so a
    /// stack of the kept prefixes enclosing the current one gives the nearest covering prefix.
    private func droppingRedundantASNPrefixes(_ owned: [Candidate], report: inout [String]) -> [Candidate] {
        var kept: [Candidate] = []
        kept.reserveCapacity(owned.count)
        var enclosing: [Candidate] = []
        var dropped = 0
        for candidate in owned {
            while let top = enclosing.last, !top.prefix.covers(candidate.prefix) { enclosing.removeLast() }
            if candidate.fromASNTable, candidate.provider >= 0, let top = enclosing.last, !top.fromASNTable,
               top.provider == candidate.provider {
                dropped += 1
                continue
            }
            kept.append(candidate)
            enclosing.append(candidate)
        }
        if dropped > 0 {
            report.append("asn table: \(dropped) prefixes dropped inside a prefix of the same provider from its own sources")
        }
        return kept
    }
}
