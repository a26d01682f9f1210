// Fuzz targets for the compiler's parsers, one binary chosen by RDR_FUZZ_FORMAT:
//
// - `pyasn`, `csv`, `aws-ip-ranges`, `gcp-cloud`, `azure-service-tags`, `k8s-asns`, `location-db`:
//   the importer of that format parses the input as a file (the location database also with an ASN
//   and a country selection, chosen by the input's length). Whatever it accepts must be clean: prefixes with
//   host bits cleared and names/regions free of control bytes (they reach headers and logs).
// - `config`: the input is a config YAML; it is decoded, and when every source it names is one of
//   the files in RDR_FUZZ_CONFIG_DIR (nothing else is ever read), compiled. Whatever the compiler
//   accepts must load (Snapshot(bytes:)) and decide safely (see checkDecision).
import Foundation
import Glibc
import RedirectorCompiler
import RedirectorCore

nonisolated(unsafe) var format = ""
nonisolated(unsafe) var importer: (any SourceImporter)?
nonisolated(unsafe) var configDirectory = ""
nonisolated(unsafe) var allowedPaths = Set<String>()

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    format = getenv("RDR_FUZZ_FORMAT").map { String(cString: $0) } ?? ""
    if format == "config" {
        guard let directory = getenv("RDR_FUZZ_CONFIG_DIR").map({ String(cString: $0) }),
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            fail("config fuzzer: set RDR_FUZZ_CONFIG_DIR to a directory of source files")
        }
        configDirectory = directory
        allowedPaths = Set(names)
    } else {
        guard let found = SourceImporters.importer(for: format) else {
            fail("importer fuzzer: set RDR_FUZZ_FORMAT to config or one of \(SourceImporters.all.map(\.format))")
        }
        importer = found
    }
    // Warm up lazily initialized globals (the config schema, Yams' and Foundation's caches) so
    // LeakSanitizer does not count their one-time allocations against the first input that
    // reaches them (Swift stores some of them as tagged pointers LeakSanitizer cannot follow).
    _ = try? Config.parse("version: 1\nroutes: [{ name: r, path: /x, pass: true }]\n", name: "warm-up.yaml")
    _ = try? JSONDecoder().decode([String: Int].self, from: Data("{\"a\": 1}".utf8))
    for format in SourceImporters.all { _ = try? format.parse(Array("1.2.3.0/24".utf8), name: "warm-up", options: SourceOptions()) }
    return 0
}

func clean(_ text: String?) -> Bool {
    text.map { !$0.utf8.contains(where: ByteClass.isControl) } ?? true
}

func fuzzImporter(_ bytes: [UInt8]) {
    var options = SourceOptions()
    options.services = bytes.count % 3 == 0 ? ["AMAZON", "Google Cloud"] : []
    options.tags = bytes.count % 5 == 0 ? ["AzureCloud"] : []
    if importer?.selectsNetworks == true, bytes.count % 2 == 0 {
        options.asns = [64500, 64501]
        options.countries = bytes.count % 4 == 0 ? ["DE"] : nil
    }
    guard let importer, let data = try? importer.parse(bytes, name: "fuzz", options: options) else { return }
    for record in data.prefixes {
        guard IPPrefix(network: record.prefix.network, length: record.prefix.length) == record.prefix else {
            fail("\(format) produced prefix \(record.prefix) with host bits")
        }
        guard clean(record.provider), clean(record.region) else {
            fail("\(format) accepted a provider/region with control bytes: \(String(describing: record.provider)) \(String(describing: record.region))")
        }
    }
    for claim in data.asnClaims {
        guard claim.asn > 0, clean(claim.provider) else { fail("\(format) accepted ASN claim \(claim)") }
    }
}

/// Every path a config reads, or nil when it names anything outside the fixture directory.
func sourcePaths(_ config: Config) -> [String] {
    var paths: [String] = []
    for provider in config.providers ?? [] {
        paths += (provider.sources ?? []).compactMap(\.path)
        if let table = provider.regionTable { paths.append(table.path) }
    }
    paths += (config.sources ?? []).compactMap(\.path)
    paths += (config.asnTable ?? []).compactMap(\.path)
    return paths
}

let requests: [(String, String, String)] = [
    ("192.0.2.1", "GET", "/v2/pause/manifests/3.9"), ("192.0.2.200", "HEAD", "/v2/a/blobs/sha256:00ff"),
    ("198.51.100.7", "GET", "/binaries/x?y=1"), ("203.0.113.9", "GET", "/v2/"), ("2001:db8:c::1", "POST", "/v2/x"),
    ("100.64.0.1", "GET", "/"), ("203.0.113.9", "GET", "//evil.example/"), ("::1", "GET", "/v2/x\r\nX: y"),
]

func fuzzConfig(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let config = try? Config.parse(text, name: "fuzz.yaml") else { return }
    guard sourcePaths(config).allSatisfy({ allowedPaths.contains($0) }) else { return }
    let compiler = SnapshotCompiler(config: config, name: "fuzz.yaml", baseDirectory: configDirectory)
    guard let contents = try? compiler.compile(createdAt: 1_700_000_000) else { return }
    let snapshot: Snapshot
    do {
        snapshot = try Snapshot(bytes: contents.encoded(), name: "fuzz.rdb")
    } catch {
        fail("the compiler accepted a config whose snapshot does not load: \(error)\n--- config ---\n\(text)")
    }
    let targets = configuredTargets(snapshot)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
    defer { buffer.deallocate() }
    for (client, method, target) in requests {
        var method = method
        var target = target
        method.withUTF8 { methodBytes in
            target.withUTF8 { targetBytes in
                let decision = snapshot.decide(client: IPAddress(client), method: UnsafeRawBufferPointer(methodBytes),
                                               target: UnsafeRawBufferPointer(targetBytes), location: buffer)
                checkDecision(snapshot, targets, decision, method: UnsafeRawBufferPointer(methodBytes),
                              target: UnsafeRawBufferPointer(targetBytes), location: buffer)
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCompiler(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if format == "config" {
        fuzzConfig(bytes)
    } else {
        fuzzImporter(bytes)
    }
    return 0
}
