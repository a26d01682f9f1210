import Foundation
import RedirectorCompiler
import RedirectorCore
import Testing

/// The documented rule for a prefix (or ASN) claimed more than once: (1) higher provider priority,
/// (2) an entry with a provider over one without, (3) an entry with a region over one without,
/// (4) the provider declared first, (5) the entry read first — and conflicts are reported.
@Suite struct OwnershipTests {
    static func owner(_ snapshot: Snapshot, _ client: String) -> String {
        let answer = snapshot.ask(client, "/")
        return answer.region.isEmpty ? answer.provider : "\(answer.provider)/\(answer.region)"
    }

    @Test func priorityWinsOverDeclarationAndReadOrder() throws {
        let fixture = try Fixture(["claims.csv": "192.0.2.0/24,alpha\n192.0.2.0/24,beta\n198.51.100.0/24,beta\n198.51.100.0/24,alpha\n"])
        let plain = try fixture.compile("""
            providers: [{ name: alpha }, { name: beta }]
            sources: [{ format: csv, path: claims.csv }]
            """)
        // (4) Equal priority: the provider declared first, whatever the read order.
        #expect(OwnershipTests.owner(plain, "192.0.2.1") == "alpha")
        #expect(OwnershipTests.owner(plain, "198.51.100.1") == "alpha")
        #expect(plain.report.contains("conflict: 192.0.2.0/24 is claimed by alpha and beta; alpha wins by the ownership rule"))
        #expect(plain.report.contains("conflict: 198.51.100.0/24 is claimed by beta and alpha; alpha wins by the ownership rule"))
        // (1) Priority beats declaration order.
        let prioritized = try fixture.compile("""
            providers: [{ name: alpha }, { name: beta, priority: 10 }]
            sources: [{ format: csv, path: claims.csv }]
            """)
        #expect(OwnershipTests.owner(prioritized, "192.0.2.1") == "beta")
        #expect(OwnershipTests.owner(prioritized, "198.51.100.1") == "beta")
        #expect(prioritized.report.contains("beta wins by the ownership rule"))
        #expect(!prioritized.report.contains("alpha wins"))
        // Declaring beta first flips the equal-priority answer.
        let reordered = try fixture.compile("""
            providers: [{ name: beta }, { name: alpha }]
            sources: [{ format: csv, path: claims.csv }]
            """)
        #expect(OwnershipTests.owner(reordered, "192.0.2.1") == "beta")
        #expect(OwnershipTests.owner(reordered, "198.51.100.1") == "beta")
        // Negative priorities lose to the default 0.
        let demoted = try fixture.compile("""
            providers: [{ name: alpha, priority: -1 }, { name: beta }]
            sources: [{ format: csv, path: claims.csv }]
            """)
        #expect(OwnershipTests.owner(demoted, "192.0.2.1") == "beta")
    }

    @Test func providerBeatsNoneAndRegionBeatsNone() throws {
        let fixture = try Fixture([
            // AS64500 is claimed by nobody; AS64501 by alpha.
            "table.dat": "; test table\n192.0.2.0/24\t64500\n198.51.100.0/24\t64501\n203.0.113.0/24\t64500\n",
            "alpha.csv": "203.0.113.0/24\n198.51.100.0/24,,west\n198.51.100.0/24\n",
            "alpha.yaml": "name: alpha\nasns: [64501]\n",
        ])
        let config = """
            sources: [{ format: k8s-asns, path: alpha.yaml }]
            providers:
              - name: alpha
                sources: [{ format: csv, path: alpha.csv }]
            asnTable: [{ format: pyasn, path: table.dat }]

            """
        let snapshot = try fixture.compile(config)
        // (2) The provider's entry beats the ASN table's unassigned entry, read later or not.
        let claimed = snapshot.ask("203.0.113.1", "/")
        #expect(claimed.provider == "alpha" && claimed.asn == 64500)  // the ASN is still explained
        // Unassigned prefixes are kept to explain the ASN.
        let unassigned = snapshot.ask("192.0.2.1", "/")
        #expect(unassigned.provider == "" && unassigned.asn == 64500 && unassigned.prefix == prefix("192.0.2.0/24"))
        // (3) Same provider: the entry with a region wins over those without.
        #expect(OwnershipTests.owner(snapshot, "198.51.100.1") == "alpha/west")
        // Same provider twice is not a conflict between providers.
        #expect(!snapshot.report.contains("conflict: 198.51.100.0/24"))

        // keepUnassignedPrefixes: false drops ASN-only prefixes.
        let lean = try fixture.compile(config + "keepUnassignedPrefixes: false\n")
        #expect(lean.ask("192.0.2.1", "/").prefix == nil)
        #expect(lean.ask("203.0.113.1", "/").provider == "alpha")
    }

    @Test func firstReadEntryWinsAmongEquals() throws {
        let fixture = try Fixture(["claims.csv": "192.0.2.0/24,alpha,one\n192.0.2.0/24,alpha,two\n192.0.2.0/24,alpha\n"])
        let snapshot = try fixture.compile("sources: [{ format: csv, path: claims.csv }]\n")
        #expect(OwnershipTests.owner(snapshot, "192.0.2.1") == "alpha/one")
    }

    @Test func hostBitsAreMaskedAndReported() throws {
        let fixture = try Fixture(["claims.csv": "10.1.2.3/8,alpha\n2001:db8::1/32,alpha\n"])
        let snapshot = try fixture.compile("sources: [{ format: csv, path: claims.csv }]\n")
        #expect(snapshot.ask("10.200.0.1", "/").prefix == prefix("10.0.0.0/8"))
        #expect(snapshot.ask("2001:db8:ffff::1", "/").prefix == prefix("2001:db8::/32"))
        #expect(snapshot.report.contains("claims.csv:1: prefix 10.1.2.3/8 has host bits set; using 10.0.0.0/8"))
        #expect(snapshot.report.contains("claims.csv:2: prefix 2001:db8::1/32 has host bits set; using 2001:db8::/32"))
    }

    /// The vendor files of examples/data plus an ASN table giving AS16550 a prefix.
    static func as16550Fixture() throws -> Fixture {
        try Fixture(["table.dat": "192.0.2.0/24\t16550\n198.51.100.0/24\t8075\n203.0.113.0/24\t15169\n"])
    }

    static let asnSources = """
        sources: [{ format: k8s-asns, path: \(repositoryPath("examples/data/k8s.io-asns")) }]
        asnTable: [{ format: pyasn, path: table.dat }]

        """

    @Test func as16550GoesToGoogleByFileOrder() throws {
        // google.yaml sorts before microsoft.yaml, so google is declared first.
        let snapshot = try OwnershipTests.as16550Fixture().compile(OwnershipTests.asnSources)
        let answer = snapshot.ask("192.0.2.1", "/")
        #expect(answer.provider == "google" && answer.asn == 16550)
        #expect(snapshot.report.contains("conflict: AS16550 is claimed by google and microsoft"))
        #expect(snapshot.report.contains("microsoft.yaml:11); google wins by the ownership rule"))
        #expect(snapshot.ask("198.51.100.1", "/").provider == "microsoft")
        #expect(snapshot.ask("203.0.113.1", "/").provider == "google")
        // Every vendor file is a provider, in file order.
        #expect((0..<9).map { snapshot.providerName(Int32($0)) } == [
            "alibabagroup", "amazon", "baidu", "digitalocean", "equinixmetal", "google", "huawei", "microsoft", "tencentcloud",
        ])
    }

    @Test func as16550FollowsPriorityOrDeclaration() throws {
        let fixture = try OwnershipTests.as16550Fixture()
        let prioritized = try fixture.compile("providers: [{ name: google }, { name: microsoft, priority: 1 }]\n" + OwnershipTests.asnSources)
        #expect(prioritized.ask("192.0.2.1", "/").provider == "microsoft")
        #expect(prioritized.report.contains("microsoft wins by the ownership rule"))
        let declared = try fixture.compile("providers: [{ name: microsoft }, { name: google }]\n" + OwnershipTests.asnSources)
        #expect(declared.ask("192.0.2.1", "/").provider == "microsoft")
        // Compiling twice gives the same bytes (no dependence on hash or map order).
        let first = try SnapshotCompilerBytes.compile(fixture, "providers: [{ name: google }]\n" + OwnershipTests.asnSources)
        let second = try SnapshotCompilerBytes.compile(fixture, "providers: [{ name: google }]\n" + OwnershipTests.asnSources)
        #expect(first == second)
    }

    @Test func asnTablePrefixesInsideTheProvidersOwnPrefixesAreDropped() throws {
        let fixture = try Fixture([
            "cloud.csv": "192.0.2.0/24,cloud,region-a\n",
            "vendor.yaml": "name: cloud\nasns: [64500]\n",
            "other.yaml": "name: other\nasns: [64501]\n",
            // Inside the cloud's /24: its own AS (dropped), another provider's AS (kept); outside it: kept.
            "table.dat": "192.0.2.0/26\t64500\n192.0.2.64/26\t64501\n192.0.2.128/27\t64502\n198.51.100.0/24\t64500\n",
        ])
        let snapshot = try fixture.compile("""
            providers: [{ name: cloud, sources: [{ format: csv, path: cloud.csv }] }]
            sources: [{ format: k8s-asns, path: vendor.yaml }, { format: k8s-asns, path: other.yaml }]
            asnTable: [{ format: pyasn, path: table.dat }]

            """)
        let inside = snapshot.ask("192.0.2.1", "/")
        #expect(inside.provider == "cloud" && inside.region == "region-a" && inside.prefix == IPPrefix("192.0.2.0/24"))
        #expect(snapshot.ask("192.0.2.65", "/").provider == "other", "another provider's prefix inside is kept")
        let unclaimed = snapshot.ask("192.0.2.129", "/")
        #expect(unclaimed.provider == "" && unclaimed.asn == 64502, "an ASN-only prefix inside is kept")
        #expect(snapshot.ask("198.51.100.1", "/").provider == "cloud" && snapshot.ask("198.51.100.1", "/").region.isEmpty)
        #expect(snapshot.report.contains("asn table: 1 prefixes dropped inside a prefix of the same provider from its own sources"))
    }
}

/// Compiles to bytes, for determinism checks.
enum SnapshotCompilerBytes {
    static func compile(_ fixture: Fixture, _ config: String) throws -> [UInt8] {
        try fixture.write("bytes.yaml", config)
        return try SnapshotCompiler(configPath: fixture.path("bytes.yaml")).compile(createdAt: 1).encoded()
    }
}
