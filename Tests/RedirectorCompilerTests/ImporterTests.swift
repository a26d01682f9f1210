import Foundation
import RedirectorCompiler
import RedirectorCore
import Testing

/// The source importers, through their public plugin protocol.
@Suite struct ImporterTests {
    static func parse(_ format: String, _ text: String, options: SourceOptions = SourceOptions()) throws -> ImportedData {
        let importer = try #require(SourceImporters.importer(for: format))
        return try importer.parse(Array(text.utf8), name: "input", options: options)
    }

    static func rows(_ data: ImportedData) -> [String] {
        data.prefixes.map { "\($0.prefix) \($0.provider ?? "-") \($0.region ?? "-") \($0.asn.map(String.init) ?? "-") \($0.origin)" }
    }

    @Test func registry() {
        let formats = SourceImporters.all.map(\.format)
        #expect(formats == ["k8s-asns", "pyasn", "aws-ip-ranges", "gcp-cloud", "azure-service-tags", "csv", "location-db"])
        #expect(Set(formats).count == formats.count)
        #expect(SourceImporters.importer(for: "CSV") == nil)
        #expect(SourceImporters.all.allSatisfy { !$0.summary.isEmpty })
        // Only the vendor-file format reads a directory of YAML files.
        #expect(SourceImporters.all.filter(\.readsDirectories).map(\.format) == ["k8s-asns"])
    }

    @Test func csv() throws {
        var options = SourceOptions()
        options.region = "default-region"
        let data = try ImporterTests.parse("csv", """
            prefix,provider,region\r
            # a comment line\r
            192.0.2.0/24\r
              198.51.100.0/24 , alpha , west   # trailing comment
            203.0.113.7/24,,\r
            2001:db8::/32,beta

            """, options: options)
        #expect(ImporterTests.rows(data) == [
            "192.0.2.0/24 - default-region - input:3",
            "198.51.100.0/24 alpha west - input:4",
            "203.0.113.0/24 - default-region - input:5",
            "2001:db8::/32 beta default-region - input:6",
        ])
        #expect(data.notes == ["input:5: prefix 203.0.113.7/24 has host bits set; using 203.0.113.0/24"])
    }

    @Test func pyasnPlainAndGzip() throws {
        let data = try ImporterTests.parse("pyasn", "; pyasn dump\n192.0.2.0/24\t64500\r\n2001:db8::/32\t64501\n")
        #expect(ImporterTests.rows(data) == ["192.0.2.0/24 - - 64500 input:2", "2001:db8::/32 - - 64501 input:3"])
        // The same text gzip-compressed (python3 -c "import gzip; gzip.compress(..., mtime=0)"), read from a file.
        let gzipped = try #require(Data(base64Encoded: "H4sIAAAAAAACA7NWKKhMLM5TSCnNLeAytDTSM9ADYn0jE04zE1MDA14uIwMDQ6uUJAsrK31jI7CgIRcAXvl6IDUAAAA="))
        let fixture = try Fixture()
        try gzipped.write(to: URL(fileURLWithPath: fixture.path("table.dat.gz")))
        let snapshot = try fixture.compile("asnTable: [{ format: pyasn, path: table.dat.gz }]\n")
        #expect(snapshot.ask("192.0.2.9", "/").asn == 64500)
        #expect(snapshot.ask("2001:db8::9", "/").asn == 64501)
        #expect(snapshot.prefixCounts.v4 == 1 && snapshot.prefixCounts.v6 == 1)
    }

    @Test func k8sVendorFile() throws {
        let data = try ImporterTests.parse("k8s-asns", """
            # note
            name: example
            redirectsTo:
              registry: registry.example
              artifacts: artifacts.example
            asns:
            - 64500
            - 64501
            - 64500
            """)
        #expect(data.asnClaims.map { "\($0.provider) \($0.asn) \($0.origin)" } == ["example 64500 input:7", "example 64501 input:8"])
        #expect(data.hints.map { "\($0.provider) \($0.registry ?? "-") \($0.artifacts ?? "-")" } == ["example registry.example artifacts.example"])
        #expect(data.notes == ["input:9: AS64500 listed again for example; ignored"])
        #expect(data.prefixes.isEmpty)
        #expect(throws: (any Error).self) { try ImporterTests.parse("k8s-asns", "name: x\nasns: [0]\n") }
        #expect(throws: (any Error).self) { try ImporterTests.parse("k8s-asns", "name: x\nasns: [4294967296]\n") }
        #expect(throws: (any Error).self) { try ImporterTests.parse("k8s-asns", "name: x\n") }
        #expect(throws: (any Error).self) { try ImporterTests.parse("k8s-asns", "- a list\n") }
        #expect(throws: (any Error).self) { try ImporterTests.parse("k8s-asns", "name: x\nredirectsTo: host\nasns: [1]\n") }
    }

    @Test func realVendorFiles() throws {
        let directory = repositoryPath("examples/data/k8s.io-asns")
        var claims: [String: Set<UInt32>] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".yaml") {
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
            let data = try #require(SourceImporters.importer(for: "k8s-asns")).parse(bytes, name: name, options: SourceOptions())
            for claim in data.asnClaims { claims[claim.provider, default: []].insert(claim.asn) }
        }
        #expect(claims.count == 9)
        #expect(claims["google"]?.contains(16550) == true && claims["microsoft"]?.contains(16550) == true)
        #expect(claims["amazon"]?.contains(16509) == true)
    }

    @Test func awsRanges() throws {
        let json = """
            {"syncToken": "1", "createDate": "x", "prefixes": [
              {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON", "network_border_group": "ap-northeast-2"},
              {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "EC2", "network_border_group": "ap-northeast-2"},
              {"ip_prefix": "15.193.0.0/19", "region": "GLOBAL", "service": "AMAZON", "network_border_group": "GLOBAL"}],
             "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/33", "region": "us-east-1", "service": "EC2", "network_border_group": "us-east-1"}]}
            """
        #expect(ImporterTests.rows(try ImporterTests.parse("aws-ip-ranges", json)) == [
            "3.5.140.0/22 - ap-northeast-2 - input: prefixes[0]", "3.5.140.0/22 - ap-northeast-2 - input: prefixes[1]",
            "15.193.0.0/19 - GLOBAL - input: prefixes[2]", "2600:1f18::/33 - us-east-1 - input: ipv6_prefixes[0]",
        ])
        var options = SourceOptions()
        options.services = ["EC2"]
        #expect(ImporterTests.rows(try ImporterTests.parse("aws-ip-ranges", json, options: options)) == [
            "3.5.140.0/22 - ap-northeast-2 - input: prefixes[1]", "2600:1f18::/33 - us-east-1 - input: ipv6_prefixes[0]",
        ])
        #expect(throws: (any Error).self) { try ImporterTests.parse("aws-ip-ranges", #"{"prefixes": []}"#) }
    }

    @Test func gcpRanges() throws {
        let json = """
            {"prefixes": [{"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
                          {"ipv6Prefix": "2600:1900:8000::/44", "service": "Google Cloud", "scope": "africa-south1"},
                          {"ipv4Prefix": "8.8.8.0/24", "service": "Other"}]}
            """
        #expect(ImporterTests.rows(try ImporterTests.parse("gcp-cloud", json)) == [
            "34.1.208.0/20 - africa-south1 - input: prefixes[0]", "2600:1900:8000::/44 - africa-south1 - input: prefixes[1]",
            "8.8.8.0/24 - - - input: prefixes[2]",
        ])
        var options = SourceOptions()
        options.services = ["Google Cloud"]
        #expect(try ImporterTests.parse("gcp-cloud", json, options: options).prefixes.count == 2)
    }

    @Test func azureServiceTags() throws {
        let json = """
            {"changeNumber": 1, "cloud": "Public", "values": [
              {"name": "AzureCloud.westeurope", "id": "x", "properties": {"region": "westeurope", "addressPrefixes": ["13.69.0.0/17", "2603:1020::/47"]}},
              {"name": "AzureCloud", "id": "y", "properties": {"region": "", "addressPrefixes": ["13.64.0.0/11"]}},
              {"name": "Storage.westeurope", "id": "z", "properties": {"region": "westeurope", "addressPrefixes": ["20.38.108.0/23"]}}]}
            """
        let all = ImporterTests.rows(try ImporterTests.parse("azure-service-tags", json))
        #expect(all.count == 4)
        #expect(all[0] == "13.69.0.0/17 - westeurope - input: values[0].properties.addressPrefixes[0]")
        #expect(all[2] == "13.64.0.0/11 - - - input: values[1].properties.addressPrefixes[0]")  // empty region = none
        var options = SourceOptions()
        options.tags = ["AzureCloud"]
        #expect(try ImporterTests.parse("azure-service-tags", json, options: options).prefixes.count == 3)
    }
}
