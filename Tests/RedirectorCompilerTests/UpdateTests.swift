import Foundation
import RedirectorCompiler
import RedirectorCore
import Testing

/// The dependency-free pieces of `redirector update`: URL sources in the config, the cache's
/// records, the shrink rule.
@Suite struct UpdateTests {
    @Test func urlSourcesMustBeHTTPAndNeedACopy() throws {
        let fixture = try Fixture()
        #expect(fixture.compileError("providers:\n  - { name: a, sources: [{ format: csv, url: 'ftp://x.example/a' }] }\n")
            == "\(fixture.path("redirector.yaml")): providers[0].sources[0].url: 'ftp://x.example/a' is not an http or https URL")
        #expect(fixture.compileError("sources:\n  - { format: csv, url: 'https://x.example/a.txt' }\n")
            .contains("sources[0].url: https://x.example/a.txt has no local copy: run `redirector update`"))
        #expect(fixture.compileError("sources:\n  - { format: csv }\n").hasSuffix("sources[0]: a source needs a `path` or a `url`"))
        try fixture.write("seed.txt", "192.0.2.0/24,a\n")
        let seeded = try fixture.compile("sources:\n  - { format: csv, path: seed.txt, url: 'https://x.example/a.txt' }\n")
        #expect(seeded.sources.first?.name == "seed.txt" && seeded.sources.first?.url == nil)
        let compiler = try SnapshotCompiler(configPath: fixture.path("redirector.yaml"))
        #expect(try compiler.urlSources().map(\.url) == ["https://x.example/a.txt"])
        #expect(try compiler.localFiles().isEmpty)
    }

    @Test func cacheMetadataRoundTrips() throws {
        let fixture = try Fixture()
        let cache = SourceCache(directory: fixture.path(""))
        let url = "https://ip-ranges.example/path/ip-ranges.json?x=1"
        #expect(cache.file(for: url).hasSuffix("-ip-ranges.json") && cache.file(for: url) != cache.file(for: url + "2"))
        let record = CacheMetadata(url: url, etag: "\"e1\"", lastModified: "Tue, 02 Jan 2024 03:04:05 GMT",
                                   fetchedAt: 1_710_000_000, sha256: String(repeating: "ab", count: 32), size: 12)
        try cache.write(record)
        #expect(cache.metadata(for: url) == nil)  // no copy beside the record
        try Data("192.0.2.0/24".utf8).write(to: URL(fileURLWithPath: cache.file(for: url)))
        #expect(cache.metadata(for: url) == record)
        #expect(cache.fetchedSource(for: url)?.fetch == SourceFetch(url: url, etag: "\"e1\"", lastModified: record.lastModified,
                                                                    fetchedAt: 1_710_000_000))
        let state = InstalledState(snapshotSHA256: "00", inputs: InstalledState.inputsDigest([("a", "1")]))
        try cache.write(state)
        #expect(cache.installedState() == state)
        #expect(InstalledState.inputsDigest([("a", "1"), ("b", "2")]) != InstalledState.inputsDigest([("b", "2"), ("a", "1")]))
    }

    @Test func shrinkRuleComparesPrefixCountsByURL() {
        func source(_ url: String?, _ count: Int) -> SourceProvenance {
            SourceProvenance(name: url ?? "local", place: "p", path: "/p", format: "csv", url: url, sha256: [], size: 0, prefixCount: count)
        }
        let installed = [source("https://a/", 1000), source("https://b/", 100), source(nil, 500)]
        let rule = ShrinkRule(maximumPercent: 50)
        #expect(rule.violations(installed: installed, compiled: [source("https://a/", 500), source("https://b/", 49), source(nil, 1)])
            == [ShrinkRule.Violation(url: "https://b/", before: 100, after: 49)])
        #expect(rule.violations(installed: installed, compiled: [source("https://a/", 100), source("https://c/", 0)]).map(\.url) == ["https://a/"])
        #expect(ShrinkRule.Violation(url: "u", before: 16000, after: 1600).description == "prefixes fell from 16000 to 1600 (90% fewer)")
    }
}
