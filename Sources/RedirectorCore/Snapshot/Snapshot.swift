import Glibc

/// Why a snapshot was rejected.
public struct SnapshotError: Error, CustomStringConvertible, Sendable {
    /// "`<path>`: `<reason>`".
    public let description: String
}

/// An open, validated, immutable snapshot: the matcher, attributes and policy.
///
/// Opening reads the file into private memory and checks everything once — size, magic, version, checksum, every section's
/// bounds and every index inside — so that lookups and decisions can read without checks and never trap.
/// A snapshot is safe to share between threads.
public final class Snapshot: @unchecked Sendable {
    /// The file the snapshot came from ("<memory>" for in-memory bytes).
    public let path: String
    /// The IPv4 matcher.
    public let ipv4: PoptrieMatcher
    /// The IPv6 matcher.
    public let ipv6: PoptrieMatcher
    /// The string table.
    public let strings: StringTable
    /// The policy.
    public let policy: Policy
    /// The policy flattened for the decision path, in an allocation of its own so that the
    /// member choice can refer to it by pointer.
    let tables: UnsafeMutablePointer<DecisionTables>
    /// Number of IPv4 and IPv6 prefixes.
    public let prefixCounts: (v4: Int, v6: Int)
    /// The compiler's report.
    public let report: String
    /// Creation time, Unix seconds.
    public let createdAt: UInt64
    /// The file's size in bytes.
    public let byteCount: Int
    /// The checksum stored in (and verified against) the file.
    public let checksum: UInt64
    /// Where each source file came from (empty for a snapshot without a `SRCS` section).
    public let sources: [SourceProvenance]
    /// Each source's name in the string table, for C callers.
    let sourceNames: [StringRef]
    /// For each attribute, its source's index in ``sources`` or ``ProvenanceSection/noSource``
    /// (empty for a snapshot without an `ASRC` section).
    public let attributeSources: [UInt16]

    /// The attribute array (``MatchAttributes/byteSize`` bytes each), validated at open.
    public let attributes: UnsafeRawPointer
    /// The region table the attributes refer to, validated at open.
    public let regions: UnsafeRawPointer
    /// Number of match attributes.
    public let attributeCount: Int
    private let memory: UnsafeRawBufferPointer
    private let release: @Sendable (UnsafeRawBufferPointer) -> Void

    /// Reads and validates the snapshot at `path`.
    ///
    /// The file is read into private, read-only anonymous memory rather than mapped: a mapping of
    /// the file would change under the validated snapshot when the file is rewritten in place
    /// (`cp new.rdb live.rdb`), giving unvalidated answers, and a truncation would raise SIGBUS in
    /// every process using it. Read once, the snapshot is immutable whatever happens to the file;
    /// a file changed while it is read fails the checksum. (Loading cost is the same: validation
    /// reads every byte anyway. NGINX workers forked after the master loaded it share its pages.)
    public static func open(path: String) throws -> Snapshot {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw SnapshotError(description: "\(path): cannot open: \(Snapshot.errorText())") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw SnapshotError(description: "\(path): cannot stat: \(Snapshot.errorText())") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw SnapshotError(description: "\(path): not a regular file") }
        let size = Int(status.st_size)
        guard size >= SnapshotFormat.headerSize else {
            throw SnapshotError(description: "\(path): truncated: \(size) bytes, smaller than the \(SnapshotFormat.headerSize)-byte header")
        }
        // The header first: a file of the wrong kind or size is rejected before anything is
        // allocated (every truncation of a snapshot costs one 64-byte read).
        var header = [UInt8](repeating: 0, count: SnapshotFormat.headerSize)
        guard header.withUnsafeMutableBytes({ pread(descriptor, $0.baseAddress, $0.count, 0) }) == SnapshotFormat.headerSize else {
            throw SnapshotError(description: "\(path): cannot read the header: \(Snapshot.errorText())")
        }
        try header.withUnsafeBytes { try Snapshot.checkHeader($0, fileSize: size) { SnapshotError(description: "\(path): \($0)") } }
        guard size <= SnapshotFormat.maximumSize else {
            throw SnapshotError(description: "\(path): \(size) bytes, more than the \(SnapshotFormat.maximumSize >> 20) MiB a snapshot may have")
        }
        guard let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0), base != MAP_FAILED else {
            throw SnapshotError(description: "\(path): cannot allocate \(size) bytes: \(Snapshot.errorText())")
        }
        var done = 0
        while done < size {
            let count = pread(descriptor, base + done, size - done, off_t(done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let reason = count == 0 ? "the file shrank while it was read (replace snapshots atomically)" : Snapshot.errorText()
                munmap(base, size)
                throw SnapshotError(description: "\(path): cannot read: \(reason)")
            }
            done += count
        }
        mprotect(base, size, PROT_READ)
        let memory = UnsafeRawBufferPointer(start: base, count: size)
        do {
            return try Snapshot(path: path, memory: memory) { munmap(UnsafeMutableRawPointer(mutating: $0.baseAddress), $0.count) }
        } catch {
            munmap(base, size)
            throw error
        }
    }

    /// Validates snapshot bytes held in memory (copied into an aligned buffer).
    public convenience init(bytes: some Collection<UInt8>, name: String = "<memory>") throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        // One memcpy for contiguous collections: the generic element-by-element copy took ~75 ms
        // for a 1.3 MB snapshot (found by the snapshot fuzzer, which loads from memory).
        let copied: Void? = bytes.withContiguousStorageIfAvailable { source in
            if let base = source.baseAddress, source.count > 0 { buffer.baseAddress?.copyMemory(from: base, byteCount: source.count) }
        }
        if copied == nil { _ = buffer.initializeMemory(as: UInt8.self, from: bytes) }
        let memory = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[..<bytes.count])
        do {
            try self.init(path: name, memory: memory) { UnsafeMutableRawPointer(mutating: $0.baseAddress)?.deallocate() }
        } catch {
            buffer.deallocate()
            throw error
        }
    }

    private init(path: String, memory: UnsafeRawBufferPointer, release: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) throws {
        func fail(_ reason: String) -> SnapshotError { SnapshotError(description: "\(path): \(reason)") }
        var header = ByteReader(memory, context: "header")
        guard let base = memory.baseAddress else { throw fail("truncated: 0 bytes, smaller than the \(SnapshotFormat.headerSize)-byte header") }
        try Snapshot.checkHeader(memory, fileSize: memory.count, fail)
        do {
            _ = try header.read(UInt64.self)
            _ = try header.read(UInt32.self)
            let sectionCount = Int(try header.read(UInt32.self))
            _ = try header.read(UInt64.self)
            let checksum: UInt64 = try header.read()
            let actual = SnapshotFormat.checksum(memory)
            guard checksum == actual else {
                throw fail("checksum mismatch (stored \(String(checksum, radix: 16)), computed \(String(actual, radix: 16))): the file is corrupt")
            }
            self.checksum = checksum
            self.createdAt = try header.read()

            // Section directory.
            guard sectionCount <= 64 else { throw fail("claims \(sectionCount) sections") }
            var directory = ByteReader(memory, offset: SnapshotFormat.headerSize, context: "section directory")
            var sections: [UInt32: UnsafeRawBufferPointer] = [:]
            for _ in 0..<sectionCount {
                let tag: UInt32 = try directory.read()
                _ = try directory.read(UInt32.self)
                let offset = Int(try directory.read(UInt32.self))
                let length = Int(try directory.read(UInt32.self))
                guard offset % 8 == 0, offset >= directory.offset, length <= memory.count - offset else {
                    throw fail("section \(Snapshot.tagName(tag)) lies outside the file")
                }
                sections[tag] = UnsafeRawBufferPointer(rebasing: memory[offset..<(offset + length)])
            }
            func section(_ tag: SnapshotFormat.Tag) throws -> UnsafeRawBufferPointer {
                guard let bytes = sections[tag.code] else { throw fail("missing section \(tag.rawValue)") }
                return bytes
            }

            let strings = try StringTable(bytes: try section(.strings))
            let policyBytes = try section(.policy)
            var policyReader = ByteReader(policyBytes, context: "policy section")
            let policy = try Policy.decode(from: &policyReader, strings: strings)
            let regions = try section(.regions)
            guard regions.count % 8 == 0, regions.count >= 8 else { throw fail("region section is empty or has a partial entry") }
            var regionReader = ByteReader(regions, context: "region section")
            for index in 0..<(regions.count / 8) {
                _ = try strings.validate(StringRef(offset: try regionReader.read(), length: try regionReader.read()), "region \(index)")
            }
            let attributes = try section(.attributes)
            guard attributes.count % MatchAttributes.byteSize == 0 else { throw fail("attribute section has a partial entry") }
            let attributeCount = attributes.count / MatchAttributes.byteSize
            var previousProvider: Int16 = -1
            var attributeReader = ByteReader(attributes, context: "attribute section")
            for index in 0..<attributeCount {
                let provider: Int16 = try attributeReader.read()
                let region: UInt16 = try attributeReader.read()
                _ = try attributeReader.read(UInt32.self)
                guard provider >= previousProvider, Int(provider) < policy.providers.count else {
                    throw fail("attribute \(index) names provider \(provider) (of \(policy.providers.count), sorted)")
                }
                guard Int(region) < regions.count / 8 else { throw fail("attribute \(index) names region \(region)") }
                previousProvider = provider
            }
            func trie(_ family: AddressFamily, _ tags: (SnapshotFormat.Tag, SnapshotFormat.Tag, SnapshotFormat.Tag),
                      _ leaves: PoptrieLeaf) throws -> Poptrie {
                try Poptrie(family: family, direct: try section(tags.0), nodes: try section(tags.1),
                            leaves: try section(tags.2), leafKind: leaves)
            }
            let answers = PoptrieLeaf.answer(valueCount: attributeCount)
            self.ipv4 = try PoptrieMatcher(answers: try trie(.v4, (.direct4, .nodes4, .leaves4), answers),
                                           lengths: try trie(.v4, (.lengthDirect4, .lengthNodes4, .lengthLeaves4), .length))
            self.ipv6 = try PoptrieMatcher(answers: try trie(.v6, (.direct6, .nodes6, .leaves6), answers),
                                           lengths: try trie(.v6, (.lengthDirect6, .lengthNodes6, .lengthLeaves6), .length))
            var info = ByteReader(try section(.info), context: "info section")
            self.prefixCounts = (Int(try info.read(UInt32.self)), Int(try info.read(UInt32.self)))
            let infoBytes = try section(.info)
            self.report = String(decoding: infoBytes[8...], as: UTF8.self)
            let provenance = try sections[SnapshotFormat.Tag.sources.code].map { try ProvenanceSection.decode($0, strings: strings) }
            self.sources = provenance?.sources ?? []
            self.sourceNames = provenance?.names ?? []
            if let attributeSources = sections[SnapshotFormat.Tag.attributeSources.code] {
                guard provenance != nil else { throw fail("has an attribute source section (ASRC) but no provenance section (SRCS)") }
                self.attributeSources = try ProvenanceSection.decode(attributeSources: attributeSources, attributeCount: attributeCount,
                                                                     sourceCount: provenance?.sources.count ?? 0)
            } else {
                self.attributeSources = []
            }
            self.strings = strings
            self.policy = policy
            self.tables = .allocate(capacity: 1)
            self.tables.initialize(to: DecisionTables(policy))
            self.attributes = attributes.baseAddress ?? base
            self.regions = regions.baseAddress ?? base
            self.attributeCount = attributeCount
        } catch let error as SnapshotError {
            throw error
        } catch {
            throw fail("\(error)")
        }
        self.path = path
        self.memory = memory
        self.byteCount = memory.count
        self.release = release
    }

    /// Checks magic, version and the size the header declares against the file's size.
    private static func checkHeader(_ header: UnsafeRawBufferPointer, fileSize size: Int,
                                    _ fail: (String) -> SnapshotError) throws {
        guard header.count >= SnapshotFormat.headerSize else {
            throw fail("truncated: \(header.count) bytes, smaller than the \(SnapshotFormat.headerSize)-byte header")
        }
        guard header.prefix(8).elementsEqual(SnapshotFormat.magic) else {
            throw fail("not a Redirector snapshot (bad magic)")
        }
        let version = UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard version == SnapshotFormat.version else {
            throw fail("format version \(version), this build reads version \(SnapshotFormat.version)"
                + (version < SnapshotFormat.version ? ": recompile it with this build's `redirector compile`" : ""))
        }
        let declared = UInt64(littleEndian: header.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        guard declared == UInt64(size) else {
            throw fail(declared > UInt64(size)
                ? "truncated: header says \(declared) bytes, file has \(size)"
                : "has \(UInt64(size) - declared) trailing bytes after its \(declared) bytes")
        }
    }

    deinit {
        tables.pointee.deallocate()
        tables.deallocate()
        release(memory)
    }

    /// The attributes at `index` (which the matcher validated to be in range).
    @inlinable @inline(__always)
    public func attributes(at index: UInt32) -> MatchAttributes {
        MatchAttributes.load(from: attributes, regions: regions, index: index)
    }

    /// The attribute index of the longest prefix covering `address`, nil when none does: the
    /// decision path (one answer-trie lookup).
    @inlinable @inline(__always)
    public func attributeIndex(_ address: IPAddress) -> UInt32? {
        let leaf: UInt32
        switch address {
        case .v4(let value): leaf = ipv4.answers.lookup(v4: value)
        case .v6(let value): leaf = ipv6.answers.lookup(v6: value)
        }
        return leaf == 0 ? nil : leaf &- 1
    }

    /// The longest prefix covering `address`, nil when none does (the length trie: for
    /// explanations, not decisions).
    public func matchedPrefix(_ address: IPAddress) -> IPPrefix? {
        switch address {
        case .v4: return ipv4.prefix(address)
        case .v6: return ipv6.prefix(address)
        }
    }

    /// The prefix that matched `decision`'s client (nil when none did): explanations only.
    public func matchedPrefix(of decision: Decision, client: IPAddress?) -> IPPrefix? {
        guard decision.attributeIndex != nil, let client else { return nil }
        return matchedPrefix(client)
    }

    /// The longest prefix covering `address` and its attribute index.
    public func lookup(_ address: IPAddress) -> PrefixMatch? {
        switch address {
        case .v4: return ipv4.longestMatch(address)
        case .v6: return ipv6.longestMatch(address)
        }
    }

    /// The source that produced attribute `index`, nil when the snapshot does not record one.
    public func source(ofAttribute index: UInt32?) -> SourceProvenance? {
        sourceIndex(ofAttribute: index).map { sources[$0] }
    }

    /// The source's name as a C string owned by the snapshot, nil when none is recorded.
    public func sourceName(ofAttribute index: UInt32?) -> UnsafePointer<CChar>? {
        sourceIndex(ofAttribute: index).map { strings.cString(sourceNames[$0]) }
    }

    private func sourceIndex(ofAttribute index: UInt32?) -> Int? {
        guard let index, Int(index) < attributeSources.count else { return nil }
        let source = Int(attributeSources[Int(index)])
        return source < sources.count ? source : nil
    }

    /// Provider name for an index ("" for -1 or out of range).
    public func providerName(_ index: Int32) -> String {
        guard index >= 0 && Int(index) < policy.providers.count else { return "" }
        return strings.string(policy.providers[Int(index)].name)
    }

    /// The index of the provider called `name`.
    public func providerIndex(named name: String) -> Int32? {
        policy.providers.firstIndex { strings.string($0.name) == name }.map { Int32($0) }
    }

    private static func errorText() -> String {
        String(cString: strerror(errno))
    }

    private static func tagName(_ tag: UInt32) -> String {
        String(decoding: (0..<4).map { UInt8(truncatingIfNeeded: tag >> (8 * $0)) }, as: UTF8.self)
    }
}
