// Fuzz target `snapshot`: the snapshot loader (Snapshot(bytes:)) and everything a loaded snapshot
// does afterwards (lookups, decisions, explanations, prefix listing).
//
// The checksum would stop almost every mutation at the first gate, so the target repairs the
// header's size and checksum (unless told not to) and lets mutations reach the structural
// validation, which must reject or accept without trapping; whatever it accepts must then be safe
// to use with any request.
//
// Two input shapes:
// - raw: the input starts with the magic "RDRSNAP\0" and is a whole snapshot file; header byte 40
//   (reserved) set to 0xFF keeps the stored size and checksum as they are;
// - patches: anything else is a list of patches to a real base snapshot (RDR_FUZZ_SNAPSHOTS, the
//   first path): byte 0 holds flags (bit 0 keep checksum, bit 1 truncate to the next 3 bytes' value,
//   bits 2–3 choose the base), then records of
//   [area u8][offset u24 LE][count u8][count bytes], where area 0 is the header, 1 the section
//   directory and k ≥ 2 the (k−2)th section, so mutations land in the small, interesting sections
//   rather than in the megabyte-sized direct arrays.
import Glibc
import RedirectorCore

nonisolated(unsafe) var bases: [[UInt8]] = []

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    bases = snapshotPaths("RDR_FUZZ_SNAPSHOTS").compactMap(readFile)
    if bases.isEmpty { fputs("snapshot fuzzer: RDR_FUZZ_SNAPSHOTS names no readable snapshot; patch inputs are skipped\n", stderr) }
    return 0
}

/// Little-endian integer at `offset`.
func load<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as: T.Type = T.self) -> T {
    var value: T = 0
    for index in 0..<MemoryLayout<T>.size where offset + index < bytes.count {
        value |= T(truncatingIfNeeded: bytes[offset + index]) << (8 * index)
    }
    return value
}

func store<T: FixedWidthInteger>(_ value: T, _ bytes: inout [UInt8], _ offset: Int) {
    for index in 0..<MemoryLayout<T>.size where offset + index < bytes.count {
        bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index))
    }
}

/// Rewrites the header's file size and checksum so the file passes the first gate.
func repairHeader(_ bytes: inout [UInt8]) {
    guard bytes.count >= SnapshotFormat.headerSize else { return }
    store(UInt64(bytes.count), &bytes, 16)
    let checksum = bytes.withUnsafeBytes { SnapshotFormat.checksum($0) }
    store(checksum, &bytes, 24)
}

/// Applies patch records to a copy of a base snapshot.
func patched(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
    guard !bases.isEmpty, input.count >= 1 else { return nil }
    let flags = input[0]
    var bytes = bases[Int(flags >> 2 & 3) % bases.count]
    // Areas: header, directory, then each section of the base.
    let sectionCount = Int(load(bytes, 12, as: UInt32.self))
    var areas: [(Int, Int)] = [(0, SnapshotFormat.headerSize), (SnapshotFormat.headerSize, sectionCount * SnapshotFormat.directoryEntrySize)]
    for index in 0..<sectionCount {
        let entry = SnapshotFormat.headerSize + index * SnapshotFormat.directoryEntrySize
        areas.append((Int(load(bytes, entry + 8, as: UInt32.self)), Int(load(bytes, entry + 12, as: UInt32.self))))
    }
    var cursor = 1
    var truncateTo: Int?
    if flags & 2 != 0, input.count >= 4 {
        truncateTo = Int(input[1]) | Int(input[2]) << 8 | Int(input[3]) << 16
        cursor = 4
    }
    while cursor + 5 <= input.count {
        let (start, length) = areas[Int(input[cursor]) % areas.count]
        let offset = Int(input[cursor + 1]) | Int(input[cursor + 2]) << 8 | Int(input[cursor + 3]) << 16
        let count = Int(input[cursor + 4])
        cursor += 5
        let position = start + (length > 0 ? offset % length : 0)
        for index in 0..<count where cursor + index < input.count && position + index < bytes.count {
            bytes[position + index] = input[cursor + index]
        }
        cursor += count
    }
    if let truncateTo, truncateTo < bytes.count { bytes.removeLast(bytes.count - truncateTo) }
    if flags & 1 == 0 { repairHeader(&bytes) }
    return bytes
}

/// Addresses worth looking up: fixed ones, and the loaded snapshot's own prefixes.
let probes: [IPAddress] = ["0.0.0.0", "255.255.255.255", "192.0.2.1", "192.0.2.200", "198.51.100.7", "203.0.113.9",
                           "100.64.1.1", "::", "::1", "2001:db8::1", "2001:db8:c::5", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                           "2600:1f00::1", "3.5.140.7", "34.64.0.1"].map { IPAddress($0)! }

let requests: [(String, String)] = [
    ("GET", "/v2/"), ("GET", "/v2/pause/manifests/3.9"), ("HEAD", "/v2/a/b/blobs/sha256:0123abcd"), ("POST", "/v2/x"),
    ("GET", "/binaries/kubectl?x=1"), ("GET", "/"), ("GET", "/privacy"), ("GET", "//evil.example/x"), ("GET", "/a\r\nX: y"),
    ("GET", "http://evil.example/v2/"), ("", ""), ("GET", "/v2/_catalog"),
]

/// Exercises a loaded snapshot the way the backends do.
func exercise(_ snapshot: Snapshot, deep: Bool) {
    let targets = configuredTargets(snapshot)
    var addresses = probes
    // A few of the snapshot's own prefixes (cheap: the first and last leaves of each family).
    for address in probes.prefix(4) {
        if let match = snapshot.lookup(address) { addresses.append(match.prefix.network) }
    }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 1)
    defer { buffer.deallocate() }
    for address in addresses {
        if let value = snapshot.attributeIndex(address) {
            // The loader checks each trie, not that they agree: an explanation may lack a prefix,
            // but one it gives must carry the decided value.
            guard snapshot.lookup(address).map({ $0.value == value }) ?? true else {
                fail("the explanation of \(address) names another value than the decision")
            }
            guard Int(value) < snapshot.attributeCount else { fail("lookup of \(address) gave value \(value) of \(snapshot.attributeCount)") }
            let attributes = snapshot.attributes(at: value)
            _ = snapshot.providerName(attributes.provider)
            _ = snapshot.strings.string(attributes.region)
        }
        for (method, target) in requests {
            var method = method
            var target = target
            method.withUTF8 { methodBytes in
                target.withUTF8 { targetBytes in
                    let decision = snapshot.decide(client: address, method: UnsafeRawBufferPointer(methodBytes),
                                                   target: UnsafeRawBufferPointer(targetBytes), location: buffer)
                    checkDecision(snapshot, targets, decision, method: UnsafeRawBufferPointer(methodBytes),
                                  target: UnsafeRawBufferPointer(targetBytes), location: buffer)
                }
            }
        }
    }
    _ = snapshot.explain(client: "192.0.2.1", method: "GET", target: "/v2/x/manifests/y")
    _ = snapshot.explain(client: nil, method: "GET", target: "/binaries/a?b")
    if deep {
        _ = snapshot.ipv4.visiblePrefixes()
        _ = snapshot.ipv6.visiblePrefixes()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshot(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let bytes: [UInt8]
    if input.count >= 8, input.prefix(8).elementsEqual(SnapshotFormat.magic) {
        var raw = Array(input)
        if raw.count < 41 || raw[40] != 0xff { repairHeader(&raw) }
        bytes = raw
    } else {
        guard let mutated = patched(input) else { return 0 }
        bytes = mutated
    }
    guard let snapshot = try? Snapshot(bytes: bytes, name: "fuzz") else { return 0 }
    // The listing walks every prefix (~1 ms): only for a sixteenth of the inputs.
    exercise(snapshot, deep: input.count > 0 && input[input.count - 1] & 0xf == 0)
    return 0
}
