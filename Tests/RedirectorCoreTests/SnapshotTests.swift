import Foundation
import RedirectorCore
import Testing

/// Snapshot encode → open round trip, and rejection (never a crash) of every kind of damage.
@Suite struct SnapshotTests {
    /// A small snapshot: two providers, regions, a few prefixes of both families and a policy
    /// using every kind of route part, client filter, action, fallback and trust entry.
    static func sample(createdAt: UInt64 = 1_700_000_123) throws -> (contents: SnapshotContents, policy: Policy) {
        var strings = StringTableBuilder()
        var pools = PoolListBuilder()
        let amazon = strings.intern("amazon")
        let google = strings.intern("google")
        let usEast = strings.intern("us-east-1")
        let registry = pools.single("https://registry.amazon.example", strings: &strings)
        let artifacts = pools.single("https://artifacts.amazon.example", strings: &strings)
        let regional = pools.single("https://us-east-1.amazon.example", strings: &strings)
        let googleRegistry = pools.single("https://registry.google.example", strings: &strings)
        let fallbackHost = pools.single("https://fallback.example", strings: &strings)
        let v2 = try PathPattern(parsing: "/v2/{rest...}", strings: &strings)
        let blob = try PathPattern(parsing: "/v2/{repo...}/blobs/{digest:digest}", strings: &strings)
        let file = try PathPattern(parsing: "/files/{name}", strings: &strings)
        let catchAll = try PathPattern(parsing: "/{any...}", strings: &strings)
        let providers = [
            Provider(name: amazon, isActive: true, priority: 1, targets: TargetHosts(registry: registry, artifacts: artifacts),
                     regionTargets: [RegionTarget(region: usEast, targets: TargetHosts(artifacts: regional))]),
            Provider(name: google, isActive: false, priority: 0, targets: TargetHosts(registry: googleRegistry)),
        ]
        let routes = [
            Route(name: strings.intern("not-allowed"), methods: MethodFilter(methods: [strings.intern("GET"), strings.intern("HEAD")], isNegated: true),
                  path: catchAll, clients: .any, action: .respond(status: 405, headers: [])),
            Route(name: strings.intern("blob"), methods: MethodFilter(methods: [strings.intern("GET")]), path: blob,
                  clients: .providers([0]),
                  action: .redirect(status: 307, target: .provider(.artifacts, provider: 0),
                                    path: [.literal(strings.intern("/blobs/")), .capture(1)], keepQuery: false)),
            Route(name: strings.intern("registry"), methods: MethodFilter(methods: [strings.intern("GET")]), path: v2,
                  clients: .matched, action: .redirect(status: 302, target: .provider(.registry, provider: nil), path: [], keepQuery: true)),
            Route(name: strings.intern("file"), methods: MethodFilter(methods: [strings.intern("GET")]), path: file,
                  clients: .exceptProviders([1]),
                  action: .redirect(status: 308, target: .pool(pools.single("https://files.example/base", strings: &strings)), path: [.path, .capture(0)], keepQuery: true)),
            Route(name: strings.intern("unmatched"), methods: MethodFilter(methods: [], isNegated: true), path: catchAll,
                  clients: .unmatched, action: .pass),
            Route(name: strings.intern("rest"), methods: MethodFilter(methods: [], isNegated: true), path: catchAll,
                  clients: .any, action: .respond(status: 404, headers: [Header(name: strings.intern("X-Why"), value: strings.intern("no route"))])),
        ]
        let policy = Policy(providers: providers, routes: routes,
                            fallback: .redirect(TargetHosts(registry: fallbackHost)),
                            trustedProxies: [prefix("10.0.0.0/8"), prefix("2001:db8::/32"), prefix("192.0.2.1/32")],
                            pools: pools.pools)
        let attributes = [
            MatchAttributes(provider: -1, asn: 64_496),
            MatchAttributes(provider: 0, region: usEast, asn: 16_509),
            MatchAttributes(provider: 0, asn: 16_509),
            MatchAttributes(provider: 1, region: strings.intern("europe-west1"), asn: 15_169),
        ]
        let entries: [(prefix: IPPrefix, value: UInt32)] = [
            (prefix("3.0.0.0/8"), 2), (prefix("3.5.0.0/16"), 1), (prefix("34.0.0.0/8"), 3), (prefix("198.51.100.0/24"), 0),
            (prefix("2600:1f00::/24"), 1), (prefix("2600:1900::/28"), 3), (prefix("::/0"), 0),
        ]
        let contents = snapshotContents(entries: entries, valueCount: 4, strings: strings, policy: policy,
                                        attributes: attributes, report: "sample report ✓", createdAt: createdAt)
        return (contents, policy)
    }

    /// Offsets and lengths of the sections, from the directory.
    static func sections(_ bytes: [UInt8]) -> [(tag: String, offset: Int, length: Int)] {
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        return (0..<u32(12)).map { index in
            let entry = 64 + 16 * index
            return (String(decoding: bytes[entry..<(entry + 4)], as: UTF8.self), u32(entry + 8), u32(entry + 12))
        }
    }

    /// The checksum as the format defines it, computed here independently: XXH64 of bytes 32..<size
    /// seeded with XXH64 (seed 0) of bytes 0..<24, i.e. every byte but the checksum field.
    static func checksum(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { raw in
            XXHash64.hash(UnsafeRawBufferPointer(rebasing: raw[32...]),
                          seed: XXHash64.hash(UnsafeRawBufferPointer(rebasing: raw[0..<24])))
        }
    }

    /// Makes damaged bytes internally consistent again (file size and checksum), so that only
    /// structural validation can reject them.
    static func reseal(_ bytes: inout [UInt8]) {
        guard bytes.count >= 64 else { return }
        withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { bytes.replaceSubrange(16..<24, with: $0) }
        withUnsafeBytes(of: checksum(bytes).littleEndian) { bytes.replaceSubrange(24..<32, with: $0) }
    }

    /// The error message for bytes that must be rejected; records an issue when they are accepted.
    static func rejection(_ bytes: [UInt8], _ what: @autoclosure () -> String,
                          sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        do {
            _ = try Snapshot(bytes: bytes, name: "damaged.rdb")
            Issue.record("\(what()) was accepted", sourceLocation: sourceLocation)
            return nil
        } catch let error as SnapshotError {
            #expect(error.description.hasPrefix("damaged.rdb: "), sourceLocation: sourceLocation)
            #expect(error.description.count > "damaged.rdb: ".count + 5, sourceLocation: sourceLocation)
            return error.description
        } catch {
            Issue.record("\(what()) threw a \(type(of: error)), not a SnapshotError: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func roundTrip() throws {
        let (contents, policy) = try SnapshotTests.sample()
        let bytes = contents.encoded()
        #expect(bytes.count % 8 == 0)
        #expect(Array(bytes[0..<8]) == SnapshotFormat.magic)
        let snapshot = try Snapshot(bytes: bytes)
        #expect(snapshot.path == "<memory>")
        #expect(snapshot.byteCount == bytes.count)
        #expect(snapshot.createdAt == 1_700_000_123)
        #expect(snapshot.report == "sample report ✓")
        #expect(snapshot.prefixCounts.v4 == 4 && snapshot.prefixCounts.v6 == 3)
        #expect(snapshot.checksum == bytes[24..<32].reversed().reduce(0) { $0 << 8 | UInt64($1) })
        #expect(snapshot.checksum == SnapshotTests.checksum(bytes))
        #expect(bytes.withUnsafeBytes { SnapshotFormat.checksum($0) } == snapshot.checksum)
        #expect(snapshot.attributeCount == 4)
        // The policy comes back as written (capture names are not stored: they become "0", "1", …).
        #expect(snapshot.policy.providers == policy.providers)
        #expect(snapshot.policy.fallback == policy.fallback)
        #expect(snapshot.policy.trustedProxies == policy.trustedProxies)
        #expect(snapshot.policy.routes.count == policy.routes.count)
        for (decoded, original) in zip(snapshot.policy.routes, policy.routes) {
            #expect(decoded.name == original.name)
            #expect(decoded.methods == original.methods)
            #expect(decoded.path.parts == original.path.parts)
            #expect(decoded.path.captureNames.count == original.path.captureNames.count)
            #expect(decoded.clients == original.clients)
            #expect(decoded.action == original.action)
        }
        #expect(snapshot.providerName(0) == "amazon")
        #expect(snapshot.providerName(1) == "google")
        #expect(snapshot.providerName(-1) == "")
        #expect(snapshot.providerName(2) == "")
        #expect(snapshot.providerIndex(named: "google") == 1)
        #expect(snapshot.providerIndex(named: "azure") == nil)
        // Lookups and attributes.
        let match = try #require(snapshot.lookup(address("3.5.1.1")))
        #expect(match.prefix == prefix("3.5.0.0/16"))
        let attributes = snapshot.attributes(at: match.value)
        #expect(attributes.provider == 0 && attributes.asn == 16_509)
        #expect(snapshot.strings.string(attributes.region) == "us-east-1")
        #expect(snapshot.lookup(address("3.6.0.1"))?.prefix == prefix("3.0.0.0/8"))
        #expect(snapshot.lookup(address("4.0.0.1")) == nil)
        #expect(snapshot.lookup(address("::ffff:3.5.1.1"))?.prefix == prefix("3.5.0.0/16"))
        #expect(snapshot.lookup(address("2600:1f00::1"))?.prefix == prefix("2600:1f00::/24"))
        #expect(snapshot.lookup(address("2a00::1"))?.prefix == prefix("::/0"))
        #expect(snapshot.attributeIndex(address("4.0.0.1")) == nil && snapshot.matchedPrefix(address("4.0.0.1")) == nil)
        #expect(snapshot.attributeIndex(address("3.6.0.1")) == snapshot.lookup(address("3.6.0.1"))?.value)
        // Encoding is deterministic.
        #expect(try SnapshotTests.sample().contents.encoded() == bytes)
    }

    @Test func openMapsAFileAndAnswersTheSame() throws {
        let bytes = try SnapshotTests.sample().contents.encoded()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rdr-snapshot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("sample.rdb").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let snapshot = try Snapshot.open(path: path)
        let memory = try Snapshot(bytes: bytes)
        #expect(snapshot.path == path)
        #expect(snapshot.byteCount == bytes.count)
        #expect(snapshot.checksum == memory.checksum)
        for text in ["3.5.1.1", "3.6.0.1", "34.1.1.1", "4.0.0.1", "2600:1f00::1", "2a00::1", "198.51.100.7"] {
            #expect(snapshot.lookup(address(text)) == memory.lookup(address(text)), "\(text)")
        }
        #expect(snapshot.explain(client: "3.5.1.1", method: "GET", target: "/v2/x").description
                == memory.explain(client: "3.5.1.1", method: "GET", target: "/v2/x").description)

        // Missing file, directory, empty file, short file, garbage, wrong version.
        func openError(_ path: String) -> String {
            do {
                _ = try Snapshot.open(path: path)
                return "accepted"
            } catch {
                return message(of: error)
            }
        }
        let missing = directory.appendingPathComponent("missing.rdb").path
        #expect(openError(missing) == "\(missing): cannot open: No such file or directory")
        #expect(openError(directory.path) == "\(directory.path): not a regular file")
        let empty = directory.appendingPathComponent("empty.rdb").path
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(openError(empty) == "\(empty): truncated: 0 bytes, smaller than the 64-byte header")
        let short = directory.appendingPathComponent("short.rdb").path
        try Data(bytes[..<63]).write(to: URL(fileURLWithPath: short))
        #expect(openError(short) == "\(short): truncated: 63 bytes, smaller than the 64-byte header")
        let garbage = directory.appendingPathComponent("garbage.rdb").path
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: garbage))
        #expect(openError(garbage) == "\(garbage): not a Redirector snapshot (bad magic)")
        var future = bytes
        let current = SnapshotFormat.version
        future[8] = UInt8(current + 1)
        let newer = directory.appendingPathComponent("newer.rdb").path
        try Data(future).write(to: URL(fileURLWithPath: newer))
        #expect(openError(newer) == "\(newer): format version \(current + 1), this build reads version \(current)")
        var past = bytes
        past[8] = UInt8(current - 1)
        let older = directory.appendingPathComponent("older.rdb").path
        try Data(past).write(to: URL(fileURLWithPath: older))
        #expect(openError(older) == "\(older): format version \(current - 1), this build reads version \(current): recompile it with this build's `redirector compile`")
    }

    @Test func headerMessages() throws {
        let bytes = try SnapshotTests.sample().contents.encoded()
        var badMagic = bytes
        badMagic[0] = UInt8(ascii: "X")
        #expect(SnapshotTests.rejection(badMagic, "bad magic") == "damaged.rdb: not a Redirector snapshot (bad magic)")
        for version: UInt32 in [0, 1, SnapshotFormat.version - 1, SnapshotFormat.version + 1, 0x0100_0001, .max] {
            var other = bytes
            withUnsafeBytes(of: version.littleEndian) { other.replaceSubrange(8..<12, with: $0) }
            let advice = version < SnapshotFormat.version ? ": recompile it with this build's `redirector compile`" : ""
            #expect(SnapshotTests.rejection(other, "version \(version)") == "damaged.rdb: format version \(version), this build reads version \(SnapshotFormat.version)" + advice)
        }
        let longer = bytes + [0, 0, 0, 0, 0, 0, 0, 0]
        #expect(SnapshotTests.rejection(longer, "trailing bytes") == "damaged.rdb: has 8 trailing bytes after its \(bytes.count) bytes")
        let shorter = Array(bytes.dropLast(8))
        #expect(SnapshotTests.rejection(shorter, "truncation") == "damaged.rdb: truncated: header says \(bytes.count) bytes, file has \(bytes.count - 8)")
        var corrupt = bytes
        corrupt[bytes.count / 2] ^= 0x10
        #expect(SnapshotTests.rejection(corrupt, "a flipped bit")?.contains("checksum mismatch") == true)
        #expect(SnapshotTests.rejection([], "no bytes") == "damaged.rdb: truncated: 0 bytes, smaller than the 64-byte header")
        var manySections = bytes
        manySections[12] = 200
        #expect(SnapshotTests.rejection(manySections, "200 sections") != nil)
    }

    @Test func truncationsAreRejected() throws {
        let bytes = try SnapshotTests.sample().contents.encoded()
        // Every length up to 4 KiB (header, directory, small sections), every length within 24 bytes of
        // each section boundary, and every 1021st length of the rest.
        var lengths = Set(0..<min(4096, bytes.count))
        for section in SnapshotTests.sections(bytes) {
            for boundary in [section.offset, section.offset + section.length] {
                lengths.formUnion(max(0, boundary - 24)..<min(bytes.count, boundary + 24))
            }
        }
        lengths.formUnion(stride(from: 0, to: bytes.count, by: 1021))
        lengths.insert(bytes.count - 1)
        #expect(lengths.count > 5000)
        for length in lengths.sorted() {
            let message = SnapshotTests.rejection(Array(bytes[..<length]), "truncation to \(length) bytes")
            #expect(message?.contains("truncated") == true, "\(length): \(message ?? "accepted")")
        }
    }

    @Test func resealedTruncationsAreRejectedByStructure() throws {
        // Truncated files whose size and checksum were fixed up: only section bounds can catch them.
        let bytes = try SnapshotTests.sample().contents.encoded()
        let sections = SnapshotTests.sections(bytes)
        let dataEnd = sections.map { $0.offset + $0.length }.max() ?? bytes.count
        var lengths = Set(0..<1024)
        for section in sections {
            for boundary in [section.offset, section.offset + section.length] {
                lengths.formUnion(max(0, boundary - 9)..<min(bytes.count, boundary + 9))
            }
        }
        lengths.formUnion(stride(from: 0, to: bytes.count, by: 8191))
        for length in lengths.sorted() where length < dataEnd {
            var cut = Array(bytes[..<length])
            SnapshotTests.reseal(&cut)
            _ = SnapshotTests.rejection(cut, "resealed truncation to \(length) bytes")
        }
        // Cutting only the final alignment padding leaves a complete, valid snapshot.
        var padded = Array(bytes[..<dataEnd])
        SnapshotTests.reseal(&padded)
        #expect(throws: Never.self) { try Snapshot(bytes: padded) }
    }

    @Test func everySingleBitFlipIsRejected() throws {
        let bytes = try SnapshotTests.sample().contents.encoded()
        var g = SeededGenerator(seed: 2024)
        // Every bit of the header and directory, and 3,000 random bits of the rest.
        var positions = (0..<(64 + 16 * SnapshotTests.sections(bytes).count) * 8).map { $0 }
        for _ in 0..<3000 { positions.append(Int(g.next() % UInt64(bytes.count * 8))) }
        var kinds: [String: Int] = [:]
        for position in positions {
            var flipped = bytes
            flipped[position / 8] ^= 1 << UInt8(position % 8)
            guard let message = SnapshotTests.rejection(flipped, "flip of bit \(position % 8) of byte \(position / 8)") else { continue }
            let kind = ["bad magic", "format version", "truncated", "trailing bytes", "checksum mismatch", "sections"]
                .first { message.contains($0) } ?? "other"
            kinds[kind, default: 0] += 1
        }
        #expect((kinds["checksum mismatch"] ?? 0) > 3000)
        #expect(kinds["bad magic"] == 64)
        #expect(kinds["format version"] == 32)
        // Creation time and reserved bytes are covered too (they once were not).
        #expect(kinds["other"] == nil)
    }

    @Test func resealedCorruptionIsRejectedOrHarmless() throws {
        // Random damage inside sections with a valid checksum: validation must reject it with a
        // message, or the snapshot must be safe to use (lookups and decisions never trap).
        let bytes = try SnapshotTests.sample().contents.encoded()
        let sections = SnapshotTests.sections(bytes)
        var g = SeededGenerator(seed: 77)
        let probes = ["3.5.1.1", "3.6.0.1", "34.1.1.1", "4.0.0.1", "198.51.100.7", "2600:1f00::1", "2600:1900::5", "2a00::1", "::"]
            .map(address) + (0..<200).map { _ in IPAddress.v4(UInt32(truncatingIfNeeded: g.next())) }
        let requests = [("GET", "/v2/x/blobs/sha256:abc?q=1"), ("GET", "/v2/x/manifests/y"), ("GET", "/files/a"), ("POST", "/"), ("GET", "/")]
        var rejected = 0, accepted = 0
        for round in 0..<1500 {
            var damaged = bytes
            // Pick a region: the directory or one section (small ones as likely as the big arrays).
            let region: Range<Int>
            if round % 12 == 0 {
                region = 64..<(64 + 16 * sections.count)
            } else {
                let section = sections[Int(g.next() % UInt64(sections.count))]
                region = section.offset..<max(section.offset + 1, section.offset + section.length)
            }
            for _ in 0..<(1 + Int(g.next() % 3)) {
                let at = region.lowerBound + Int(g.next() % UInt64(region.count))
                if at < damaged.count { damaged[at] ^= UInt8(truncatingIfNeeded: 1 << (g.next() % 8)) }
            }
            SnapshotTests.reseal(&damaged)
            guard let snapshot = try? Snapshot(bytes: damaged) else {
                rejected += 1
                continue
            }
            accepted += 1
            for probe in probes {
                if let match = snapshot.lookup(probe) {
                    #expect(Int(match.value) < snapshot.attributeCount)
                    let attributes = snapshot.attributes(at: match.value)
                    #expect(attributes.provider >= -1 && Int(attributes.provider) < snapshot.policy.providers.count)
                    _ = snapshot.strings.string(attributes.region)
                }
            }
            for (method, target) in requests {
                _ = snapshot.explain(client: "3.5.1.1", method: method, target: target)
                _ = snapshot.explain(client: "2600:1900::5", method: method, target: target)
            }
            _ = snapshot.ipv4.visiblePrefixes()
            _ = snapshot.ipv6.visiblePrefixes()
        }
        #expect(rejected > 300)
        #expect(rejected + accepted == 1500)
    }
}
