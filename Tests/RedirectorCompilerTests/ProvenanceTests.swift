import Foundation
import RedirectorCompiler
import RedirectorCore
import Testing

/// Provenance: compile → encode → open → read back, for every format; the source each matched
/// prefix came from; the loader's checks of the provenance sections.
@Suite struct ProvenanceTests {
    /// SHA-256 by `sha256sum`, an implementation independent of the compiler's.
    static func sha256sum(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    static let files = [
        "aws.json": """
            {"syncToken": "1704164645", "createDate": "2024-01-02-03-04-05",
             "prefixes": [{"ip_prefix": "192.0.2.0/24", "region": "us-east-1", "service": "AMAZON"}], "ipv6_prefixes": []}
            """,
        "gcp.json": """
            {"syncToken": "1704164645123", "creationTime": "2024-01-02T03:04:05.123456",
             "prefixes": [{"ipv4Prefix": "198.51.100.0/24", "scope": "europe-west1", "service": "Google Cloud"}]}
            """,
        "azure.json": """
            {"changeNumber": 42, "cloud": "Public",
             "values": [{"name": "AzureCloud.westeurope", "properties": {"region": "westeurope", "addressPrefixes": ["203.0.113.0/24"]}}]}
            """,
        "list.csv": "2001:db8::/32\n",
        "vendors/a.yaml": "name: alpha\nasns: [64500]\n",
        "vendors/b.yaml": "name: beta\nasns: [64501]\n",
        "data/ipasn_20140513.dat": "10.0.0.0/8\t64500\n172.16.0.0/12\t64501\n",
        "rib.dat": "; IP-ASN32-DAT file\n; Original file : data/rib.20140513.0600.bz2\n100.64.0.0/10\t64502\n",
    ]

    static let config = """
        providers:
          - { name: aws, sources: [{ format: aws-ip-ranges, path: aws.json }] }
          - { name: gcp, sources: [{ format: gcp-cloud, path: gcp.json }] }
          - { name: azure, sources: [{ format: azure-service-tags, path: azure.json }] }
          - { name: lab, sources: [{ format: csv, path: list.csv }] }
        sources:
          - { format: k8s-asns, path: vendors }
        asnTable:
          - { format: pyasn, path: data/ipasn_20140513.dat }
          - { format: pyasn, path: rib.dat }

        """

    @Test func roundTripsForEveryFormat() throws {
        let fixture = try Fixture(ProvenanceTests.files)
        let snapshot = try fixture.compile(ProvenanceTests.config)
        let byName = Dictionary(uniqueKeysWithValues: snapshot.sources.map { ($0.name, $0) })
        #expect(snapshot.sources.map(\.name) == ["aws.json", "gcp.json", "azure.json", "list.csv", "vendors/a.yaml", "vendors/b.yaml",
                                                 "data/ipasn_20140513.dat", "rib.dat"])
        // Publisher versions and dates (times computed with Python's calendar.timegm).
        let aws = try #require(byName["aws.json"])
        #expect(aws.format == "aws-ip-ranges" && aws.publisherVersion == "1704164645" && aws.publishedAt == 1_704_164_645)
        let gcp = try #require(byName["gcp.json"])
        #expect(gcp.publisherVersion == "1704164645123" && gcp.publishedAt == 1_704_164_645)
        let azure = try #require(byName["azure.json"])
        #expect(azure.publisherVersion == "42" && azure.publishedAt == nil)
        #expect(byName["list.csv"]?.publisherVersion == nil && byName["list.csv"]?.publishedAt == nil)
        #expect(byName["vendors/a.yaml"]?.publisherVersion == nil && byName["vendors/a.yaml"]?.prefixCount == 0)
        let dump = try #require(byName["data/ipasn_20140513.dat"])
        #expect(dump.publisherVersion == "20140513" && dump.publishedAt == 1_399_939_200 && dump.prefixCount == 2)
        let rib = try #require(byName["rib.dat"])
        #expect(rib.publisherVersion == "20140513.0600" && rib.publishedAt == 1_399_960_800)
        // File facts against independent readings.
        for source in snapshot.sources {
            let path = fixture.path(source.name)
            #expect(source.path == path)
            #expect(source.sha256Hex == (try ProvenanceTests.sha256sum(path)))
            #expect(source.size == UInt64((try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1))
            #expect(source.place.hasPrefix(fixture.path("redirector.yaml") + ": "))
            #expect(source.url == nil && source.fetchedAt == nil && source.etag == nil)
        }
        #expect(aws.place.hasSuffix("providers[0].sources[0]") && rib.place.hasSuffix("asnTable[1]"))
        // Ages: the publisher's date, else the compile time (the fixture compiles at 1_700_000_000).
        #expect(aws.dataTime(compiledAt: snapshot.createdAt) == 1_704_164_645 && aws.dataTimeBasis == "published")
        #expect(azure.dataTime(compiledAt: snapshot.createdAt) == 1_700_000_000 && azure.dataTimeBasis == "compiled")

        // Each matched prefix names its source; ASN-table prefixes name the table, not the vendor file.
        #expect(snapshot.ask("192.0.2.1", "/").source == "aws.json")
        #expect(snapshot.ask("198.51.100.1", "/").source == "gcp.json")
        #expect(snapshot.ask("203.0.113.1", "/").source == "azure.json")
        #expect(snapshot.ask("2001:db8::1", "/").source == "list.csv")
        #expect(snapshot.ask("10.1.2.3", "/").source == "data/ipasn_20140513.dat")
        #expect(snapshot.ask("100.64.0.1", "/").source == "rib.dat")
        #expect(snapshot.ask("192.0.2.1", "/").description.contains(" source=aws.json "))
        #expect(snapshot.ask("8.8.8.8", "/").source == "" && snapshot.ask("8.8.8.8", "/").description.contains(" source=- "))
        #expect(snapshot.ask("192.0.2.1", "/").jsonMembers.contains { $0.key == "source" && $0.value == "\"aws.json\"" })
        #expect(snapshot.attributeSources.count == snapshot.attributeCount)
    }

    @Test func fetchedSourcesRecordTheirURLAndValidators() throws {
        let fixture = try Fixture(["cache/aws.json": ProvenanceTests.files["aws.json"] ?? ""])
        try fixture.write("redirector.yaml", "providers:\n  - { name: aws, sources: [{ format: aws-ip-ranges, url: 'https://ip-ranges.example/ip-ranges.json' }] }\n")
        var compiler = try SnapshotCompiler(configPath: fixture.path("redirector.yaml"))
        let fetch = SourceFetch(url: "https://ip-ranges.example/ip-ranges.json", etag: "\"abc\"",
                                lastModified: "Tue, 02 Jan 2024 03:04:05 GMT", fetchedAt: 1_710_000_000)
        compiler.fetched[fetch.url] = FetchedSource(file: fixture.path("cache/aws.json"), cachePath: fixture.path("cache/aws.json"), fetch: fetch)
        let snapshot = try Snapshot(bytes: try compiler.compile(createdAt: 1_720_000_000).encoded())
        let source = try #require(snapshot.sources.first)
        #expect(source.name == "https://ip-ranges.example/ip-ranges.json" && source.url == source.name)
        #expect(source.etag == "\"abc\"" && source.lastModified == "Tue, 02 Jan 2024 03:04:05 GMT" && source.fetchedAt == 1_710_000_000)
        #expect(snapshot.ask("192.0.2.1", "/").source == "https://ip-ranges.example/ip-ranges.json")
    }

    @Test func malformedDatesAreNotesNotFailures() throws {
        let fixture = try Fixture([
            "aws.json": #"{"syncToken": "1", "createDate": "2024-02-30-00-00-00", "prefixes": [], "ipv6_prefixes": []}"#,
            "gcp.json": #"{"syncToken": 7, "creationTime": "2024-01-02 03:04:05", "prefixes": []}"#,
        ])
        let snapshot = try fixture.compile("""
            providers:
              - { name: aws, sources: [{ format: aws-ip-ranges, path: aws.json }] }
              - { name: gcp, sources: [{ format: gcp-cloud, path: gcp.json }] }

            """)
        #expect(snapshot.sources.map(\.publishedAt) == [nil, nil])
        #expect(snapshot.sources.map(\.publisherVersion) == ["1", "7"])
        #expect(snapshot.report.contains("createDate '2024-02-30-00-00-00' is not a date"))
        #expect(snapshot.report.contains("creationTime '2024-01-02 03:04:05' is not a date"))
    }

    @Test func strictDateParsing() {
        // Independent values: Python's calendar.timegm.
        #expect(PublisherDateProbe.iso("2024-01-02T03:04:05Z") == 1_704_164_645)
        #expect(PublisherDateProbe.iso("2024-01-02T03:04:05+02:00") == 1_704_157_445)
        #expect(PublisherDateProbe.iso("2024-01-02T03:04:05.5") == 1_704_164_645)
        for bad in ["2024-01-02T03:04", "2024-13-02T03:04:05", "2024-01-02T24:00:00", "2024-01-02T03:04:05X", "2023-02-29T00:00:00",
                    "2024-01-02T03:04:05.", "+024-01-02T03:04:05"] {
            #expect(PublisherDateProbe.iso(bad) == nil, "\(bad)")
        }
        #expect(PublisherDateProbe.iso("2024-02-29T00:00:00") == 1_709_164_800)
    }

    /// A snapshot whose `SRCS` section is altered by `change` (checksum recomputed), opened.
    static func openAltered(_ change: (inout [UInt8], Int, Int) -> Void) throws -> String {
        let fixture = try Fixture(["list.csv": "192.0.2.0/24\n"])
        try fixture.write("redirector.yaml", "providers:\n  - { name: lab, sources: [{ format: csv, path: list.csv }] }\n")
        var bytes = try SnapshotCompiler(configPath: fixture.path("redirector.yaml")).compile(createdAt: 1).encoded()
        let count = Int(bytes[12]) | Int(bytes[13]) << 8
        for index in 0..<count {
            let entry = SnapshotFormat.headerSize + index * SnapshotFormat.directoryEntrySize
            guard bytes[entry..<(entry + 4)].elementsEqual("SRCS".utf8) else { continue }
            func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
            change(&bytes, u32(entry + 8), u32(entry + 12))
        }
        let checksum = bytes.withUnsafeBytes { SnapshotFormat.checksum($0) }
        for index in 0..<8 { bytes[24 + index] = UInt8(truncatingIfNeeded: checksum >> (8 * UInt64(index))) }
        do {
            _ = try Snapshot(bytes: bytes, name: "altered.rdb")
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func otherwiseIsReadOnlyWhenThePathIsMissing() throws {
        let fixture = try Fixture(["list.csv": "192.0.2.0/24,lab\n", "other.csv": "198.51.100.0/24,lab\n"])
        func config(_ path: String) -> String {
            """
            sources:
              - { format: location-db, path: \(path), otherwise: { format: csv, path: list.csv } }
            routes: [{ name: r, path: /x, pass: true }]

            """
        }
        let fallen = try fixture.compile(config("missing.db"))
        #expect(fallen.sources.map(\.place) == ["\(fixture.path("redirector.yaml")): sources[0].otherwise"])
        #expect(fallen.report.contains("sources[0]: \(fixture.path("missing.db")) not found: read its 'otherwise' (csv list.csv)"))
        #expect(fallen.lookup(IPAddress("192.0.2.1")!) != nil)
        // A path that exists is read, whatever it holds: its own errors are not hidden by the fallback.
        let message = fixture.compileError(config("other.csv"))
        #expect(message.contains("sources[0]: ") && message.contains("other.csv") && !message.contains("otherwise"), "\(message)")
        // One level only: an `otherwise` inside an `otherwise` is an unknown key.
        #expect(fixture.compileError("""
            sources:
              - { format: csv, path: a.csv, otherwise: { format: csv, path: b.csv, otherwise: { format: csv, path: list.csv } } }
            routes: [{ name: r, path: /x, pass: true }]

            """).contains("unknown key 'otherwise'"))
    }

    @Test func loaderRejectsACorruptProvenanceSection() throws {
        #expect(try ProvenanceTests.openAltered { _, _, _ in } == "accepted")
        // Flags (the entry's last u32) with an unknown bit.
        #expect(try ProvenanceTests.openAltered { bytes, offset, length in bytes[offset + length - 1] = 0x80 }
                == "altered.rdb: provenance source 0 has unknown flags 0x80000000")
        // A count that does not match the length.
        #expect(try ProvenanceTests.openAltered { bytes, offset, _ in bytes[offset] = 2 }
                == "altered.rdb: provenance section (SRCS) claims 2 sources in \(8 + ProvenanceSection.entrySize) bytes (\(ProvenanceSection.entrySize) bytes each after an 8-byte head)")
        // The name reference pointing past the string table.
        #expect(try ProvenanceTests.openAltered { bytes, offset, _ in bytes[offset + 11] = 0x7f }
                == "altered.rdb: provenance source 0 name names a string outside the string table")
    }
}

/// The compiler's date parser, reached through a config (it is internal): a GCP file whose
/// `creationTime` is the text.
enum PublisherDateProbe {
    static func iso(_ text: String) -> UInt64? {
        let importer = SourceImporters.importer(for: "gcp-cloud")
        let json = "{\"creationTime\": \"\(text)\", \"prefixes\": []}"
        return (try? importer?.parse(Array(json.utf8), name: "probe", options: SourceOptions()))?.publishedAt
    }
}
