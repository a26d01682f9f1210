/// One family's longest-prefix matcher: an answer trie for decisions and a length trie for
/// explanations.
///
/// The decision path reads only ``answers``, whose leaves are the matched entry's value + 1 and
/// nothing else, so equal answers compress into one leaf run whatever their prefix lengths. The
/// matched prefix (needed by `decide`, `/explain`, `$redirector_prefix`) comes from ``lengths``,
/// a second trie over the same prefixes whose leaves are the matched length + 1: the prefix is
/// the address masked to that length. Both are built from one radix tree, so they always agree.
public struct PoptrieMatcher: PrefixMatcher, Sendable {
    /// Leaves: value + 1 (``PoptrieLeaf/answer(valueCount:)``).
    public let answers: Poptrie
    /// Leaves: prefix length + 1 (``PoptrieLeaf/length``).
    public let lengths: Poptrie

    /// Pairs two validated tries of one family.
    public init(answers: Poptrie, lengths: Poptrie) throws {
        guard answers.family == lengths.family, case .answer = answers.leafKind, lengths.leafKind == .length else {
            throw Poptrie.ValidationError(description: "\(answers.family.name) matcher needs an answer trie and a length trie")
        }
        self.answers = answers
        self.lengths = lengths
    }

    /// The address family.
    public var family: AddressFamily { answers.family }

    /// Bytes of both tries.
    public var byteCount: Int { answers.byteCount + lengths.byteCount }

    /// The matched value of `address`, nil when no prefix covers it (the decision path).
    @inlinable @inline(__always)
    public func value(_ address: IPAddress) -> UInt32? {
        let leaf = answers.lookup(address)
        return leaf == 0 ? nil : leaf &- 1
    }

    /// The longest prefix containing `address`, nil when none does (or the family differs).
    public func prefix(_ address: IPAddress) -> IPPrefix? {
        let leaf = lengths.lookup(address)
        return leaf == 0 ? nil : IPPrefix(network: address, length: Int(leaf &- 1))
    }

    /// The longest prefix containing `address` and its value (``PrefixMatcher``).
    public func longestMatch(_ address: IPAddress) -> PrefixMatch? {
        guard let value = value(address), let prefix = prefix(address) else { return nil }
        return PrefixMatch(prefix: prefix, value: value)
    }

    /// Every prefix a lookup can return, with its value, sorted: the input prefixes minus those
    /// that more specific prefixes shadow completely. Walks both tries' runs side by side. Used
    /// by `redirector export` and as a structural check.
    public func visiblePrefixes() -> [PrefixMatch] {
        let answerRuns = answers.runs()
        let lengthRuns = lengths.runs()
        var found = Set<PrefixMatch>()
        var a = 0, l = 0
        while a < answerRuns.count && l < lengthRuns.count {
            let start = max(answerRuns[a].start, lengthRuns[l].start)
            let (answer, length) = (answerRuns[a].leaf, lengthRuns[l].leaf)
            if answer != 0 && length != 0 {
                let network: IPAddress = family == .v4 ? .v4(UInt32(truncatingIfNeeded: start &>> 96)) : .v6(start)
                found.insert(PrefixMatch(prefix: IPPrefix(network: network, length: Int(length - 1)), value: answer - 1))
            }
            // Step whichever run ends first (both when they end together).
            let answerEnd = a + 1 < answerRuns.count ? answerRuns[a + 1].start : nil
            let lengthEnd = l + 1 < lengthRuns.count ? lengthRuns[l + 1].start : nil
            switch (answerEnd, lengthEnd) {
            case (nil, nil): a += 1; l += 1
            case (nil, _): l += 1
            case (_, nil): a += 1
            case (let x?, let y?): if x <= y { a += 1 }; if y <= x { l += 1 }
            }
        }
        return found.sorted { $0.prefix < $1.prefix }
    }
}

/// Poptrie memory this object owns (a ``Poptrie`` only borrows its memory): for tables built in
/// memory rather than read from a snapshot (the analysis ASN table, tests, benchmarks).
public final class PoptrieStorage: @unchecked Sendable {
    /// The trie over this object's memory.
    public let poptrie: Poptrie
    private let buffers: [UnsafeMutableRawBufferPointer]

    /// Copies `image` into owned memory and validates it.
    public init(_ image: PoptrieImage) throws {
        let (direct, nodes, leaves) = image.serialized()
        let buffers = [direct, nodes, leaves].map { bytes in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
            buffer.copyBytes(from: bytes)
            return buffer
        }
        do {
            poptrie = try Poptrie(
                family: image.family,
                direct: UnsafeRawBufferPointer(rebasing: buffers[0][..<direct.count]),
                nodes: UnsafeRawBufferPointer(rebasing: buffers[1][..<nodes.count]),
                leaves: UnsafeRawBufferPointer(rebasing: buffers[2][..<leaves.count]),
                leafKind: image.leafKind)
        } catch {
            for buffer in buffers { buffer.deallocate() }
            throw error
        }
        self.buffers = buffers
    }

    deinit {
        for buffer in buffers { buffer.deallocate() }
    }
}

/// A ``PoptrieMatcher`` over owned memory.
public final class PoptrieMatcherStorage: PrefixMatcher, @unchecked Sendable {
    /// The matcher.
    public let matcher: PoptrieMatcher
    private let storage: (PoptrieStorage, PoptrieStorage)

    /// Copies both tries of `image` into owned memory and validates them.
    public init(_ image: PoptrieMatcherImage) throws {
        let answers = try PoptrieStorage(image.answers)
        let lengths = try PoptrieStorage(image.lengths)
        matcher = try PoptrieMatcher(answers: answers.poptrie, lengths: lengths.poptrie)
        storage = (answers, lengths)
    }

    /// ``PoptrieMatcher/longestMatch(_:)``.
    public func longestMatch(_ address: IPAddress) -> PrefixMatch? { matcher.longestMatch(address) }
}
