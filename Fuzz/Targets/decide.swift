// Fuzz target `decide`: the decision contract on real snapshots, with arbitrary client, method
// and request-target bytes, through Snapshot.decide and through the C ABI (rdr_decide, compiled
// into this binary from Sources/RedirectorABI).
//
// Invariants (any violation aborts): a redirect's Location holds no control byte, space or DEL
// (so no CR/LF/NUL), starts with a configured target followed by '/', '?' or nothing, and was
// produced for a target starting with '/'; the C ABI agrees with the Swift decision byte for byte;
// a too-small buffer yields RDR_ENOSPC with the needed length, and retrying with that length
// gives the same decision.
//
// Snapshots: RDR_FUZZ_SNAPSHOTS (colon-separated paths). Input layout:
// [mode u8][buffer u8][client…][method length u8][method…][target…], where mode bits 0–1 choose
// the client (0 text, 1 one of the snapshot's own prefixes, 2 none, 3 raw 4/16 bytes), bits 2–4
// the snapshot, bit 5 the C ABI.
import CRedirector
import Glibc
import RedirectorCore

struct Loaded {
    let snapshot: Snapshot
    let table: OpaquePointer
    let targets: Set<[UInt8]>
    let networks: [IPAddress]
}

nonisolated(unsafe) var loaded: [Loaded] = []

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    for path in snapshotPaths("RDR_FUZZ_SNAPSHOTS") {
        var error = [CChar](repeating: 0, count: 512)
        guard let snapshot = try? Snapshot.open(path: path), let table = rdr_open(path, &error, error.count) else {
            fail("cannot open \(path): \(String(cString: error))")
        }
        let networks = (snapshot.ipv4.visiblePrefixes() + snapshot.ipv6.visiblePrefixes()).map(\.prefix.network)
        loaded.append(Loaded(snapshot: snapshot, table: table, targets: configuredTargets(snapshot), networks: networks))
    }
    if loaded.isEmpty { fail("decide fuzzer: set RDR_FUZZ_SNAPSHOTS to one or more snapshot paths") }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecide(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let mode = input[0]
    let bufferSizes = [0, 1, 24, 64, 512, 4096, 65536]
    let bufferSize = bufferSizes[Int(input[1]) % bufferSizes.count]
    let entry = loaded[Int(mode >> 2 & 7) % loaded.count]
    var cursor = 2

    // The client, as text for the C ABI and as an address for Swift.
    var clientText: [UInt8] = []
    switch mode & 3 {
    case 0:
        let count = cursor < size ? min(Int(input[cursor]), size - cursor - 1) : 0
        if count > 0 { clientText = Array(input[(cursor + 1)..<(cursor + 1 + count)]) }
        cursor += 1 + max(count, 0)
    case 1:
        if cursor + 2 <= size, !entry.networks.isEmpty {
            var address = entry.networks[(Int(input[cursor]) << 8 | Int(input[cursor + 1])) % entry.networks.count]
            if cursor + 3 <= size {
                switch address {
                case .v4(let value): address = .v4(value | UInt32(input[cursor + 2]))
                case .v6(let value): address = .v6(value | UInt128(input[cursor + 2]))
                }
            }
            clientText = Array(address.description.utf8)
        }
        cursor += 3
    case 2:
        break
    default:
        let count = cursor < size && input[cursor] & 1 == 0 ? 4 : 16
        if cursor + 1 + count <= size {
            let bytes = UnsafeRawBufferPointer(rebasing: input[(cursor + 1)..<(cursor + 1 + count)])
            if let address = IPAddress(networkBytes: bytes) { clientText = Array(address.description.utf8) }
        }
        cursor += 1 + count
    }
    guard cursor < size else { return 0 }
    let methodLength = min(Int(input[cursor]) % 24, size - cursor - 1)
    let method = UnsafeRawBufferPointer(rebasing: input[(cursor + 1)..<(cursor + 1 + methodLength)])
    let target = UnsafeRawBufferPointer(rebasing: input[(cursor + 1 + methodLength)...])

    let client = clientText.withUnsafeBytes { AddressParser.parseAddress($0) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bufferSize, 1), alignment: 1)
    defer { buffer.deallocate() }
    let location = UnsafeMutableRawBufferPointer(rebasing: buffer[..<bufferSize])
    let decision = entry.snapshot.decide(client: client, method: method, target: target, location: location)
    checkDecision(entry.snapshot, entry.targets, decision, method: method, target: target, location: location)
    var full = decision
    var fullLocation: [UInt8] = []
    if decision.action == .redirect {
        // Retry with exactly the reported length: same decision, and now the Location is written.
        let exact = UnsafeMutableRawBufferPointer.allocate(byteCount: max(decision.locationLength, 1), alignment: 1)
        defer { exact.deallocate() }
        let exactLocation = UnsafeMutableRawBufferPointer(rebasing: exact[..<decision.locationLength])
        full = entry.snapshot.decide(client: client, method: method, target: target, location: exactLocation)
        guard full == decision else { fail("decision changed with the buffer size: \(decision) vs \(full)") }
        checkDecision(entry.snapshot, entry.targets, full, method: method, target: target, location: exactLocation)
        fullLocation = Array(exactLocation)
    }

    if mode & 0x20 != 0 {
        // The same request through the C ABI.
        var abiBuffer = [UInt8](repeating: 0xAA, count: bufferSize + 1)
        var output = rdr_decision()
        let result: Int32 = clientText.withUnsafeBytes { clientBytes in
            var request = rdr_request(
                client: clientBytes.baseAddress?.assumingMemoryBound(to: CChar.self), client_len: clientBytes.count,
                method: method.baseAddress?.assumingMemoryBound(to: CChar.self), method_len: method.count,
                host: nil, host_len: 0, path: target.baseAddress?.assumingMemoryBound(to: CChar.self), path_len: target.count,
                headers: nil, header_count: 0, health: nil, missing: nil, missing_count: 0, checks_exhausted: 0)
            return abiBuffer.withUnsafeMutableBytes { bufferBytes in
                rdr_decide(entry.table, &request, &output,
                           bufferSize == 0 ? nil : bufferBytes.baseAddress?.assumingMemoryBound(to: CChar.self), bufferSize)
            }
        }
        let (action, status, length, route) = (output.action, output.status, output.location_len, output.route)
        guard action == decision.action.rawValue, status == decision.status, route == decision.route else {
            fail("C ABI decided \(action)/\(status)/route \(route), Swift \(decision)")
        }
        if decision.action == .redirect {
            guard length == decision.locationLength else { fail("C ABI location length \(length) != \(decision.locationLength)") }
            if length > bufferSize {
                guard result == RDR_ENOSPC else { fail("C ABI returned \(result) for a too-small buffer") }
                guard abiBuffer.allSatisfy({ $0 == 0xAA }) else { fail("C ABI wrote into a too-small buffer") }
            } else {
                guard result == RDR_OK, Array(abiBuffer[..<length]) == fullLocation else {
                    fail("C ABI Location \"\(shown(abiBuffer[..<length]))\" != \"\(shown(fullLocation))\"")
                }
                if length < bufferSize { guard abiBuffer[length] == 0 else { fail("C ABI Location not NUL-terminated") } }
                guard abiBuffer[bufferSize] == 0xAA else { fail("C ABI wrote past the buffer") }
            }
        } else {
            guard result == RDR_OK else { fail("C ABI returned \(result) for \(decision.action)") }
        }
        var prefixText = [CChar](repeating: 0, count: 64)
        let written = rdr_format_prefix(entry.table, &output, &prefixText, prefixText.count)
        guard written >= 0 else { fail("rdr_format_prefix failed") }
        let prefix = entry.snapshot.matchedPrefix(of: decision, client: client)
        if (prefix == nil) != (written == 0) { fail("rdr_format_prefix wrote \(written) bytes for prefix \(String(describing: prefix))") }
        if let prefix, String(cString: prefixText) != prefix.description {
            fail("rdr_format_prefix \(String(cString: prefixText)) != \(prefix)")
        }
        let routeHeaders = rdr_route_header_count(entry.table, decision.route)
        for index in 0..<routeHeaders {
            var name: UnsafePointer<CChar>?
            var value: UnsafePointer<CChar>?
            guard rdr_route_header(entry.table, decision.route, index, &name, &value) == RDR_OK, name != nil, value != nil else {
                fail("rdr_route_header failed")
            }
        }
    }
    return 0
}
