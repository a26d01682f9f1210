// The C ABI of libredirector.so, declared in include/redirector.h.
//
// The header is the only declaration: `CRedirector` imports it, so `rdr_request`, `rdr_decision`,
// the `RDR_*` codes and the ABI version below are what a C compiler sees, laid out by the compiler.
//
// Every entry point is synchronous, starts no threads, and never traps: pointers are checked for
// NULL, lengths are checked, and all indices into the snapshot were validated when it was opened.
// Only rdr_open and rdr_close, the health state's life cycle (Health.swift) and rdr_format_skipped
// allocate; rdr_decide reads request headers from stack memory (Request.swift).

import CRedirector
import RedirectorCore

/// What `rdr_table *` points to: the answer tries' raw views, so lookups touch no reference counts,
/// the snapshot that owns their memory (retained until rdr_close), and the C strings of the
/// fallback steps' names (``FallbackStep/name``, "" for none), allocated once per table.
struct Handle {
    let ipv4: Poptrie
    let ipv6: Poptrie
    /// `providers[leaf]`: the provider of every answer leaf, `RDR_NO_MATCH` at 0 (no match), so a
    /// lookup ends with one load from a 2-byte column (94 KB for 47k attributes) instead of a
    /// branch and an 8-byte attribute row.
    let providers: UnsafeMutablePointer<Int16>
    let owner: Unmanaged<Snapshot>
    /// Whether any route looks at request headers (else rdr_decide does not read them).
    let readsHeaders: Bool
    /// `stepNames[step.rawValue]`, for every ``FallbackStep``.
    let stepNames: UnsafeMutableBufferPointer<UnsafePointer<CChar>>
    /// The memory `stepNames` point into.
    let stepText: UnsafeMutableBufferPointer<CChar>
}

@inline(__always)
func handle(_ pointer: OpaquePointer?) -> UnsafePointer<Handle>? {
    pointer.map { UnsafePointer<Handle>($0) }
}

@inline(__always)
func table(_ pointer: OpaquePointer?) -> Snapshot? {
    handle(pointer)?.pointee.owner.takeUnretainedValue()
}

/// `body` with the snapshot of `pointer` borrowed (no retain and release: the handle keeps it
/// alive until rdr_close), or `otherwise` for NULL. For the calls hosts make on every request.
@inline(__always)
func withTable<Result>(_ pointer: OpaquePointer?, otherwise: Result, _ body: (Snapshot) -> Result) -> Result {
    guard let handle = handle(pointer) else { return otherwise }
    return handle.pointee.owner._withUnsafeGuaranteedRef(body)
}

/// Writes `message` NUL-terminated into the caller's buffer `error` (truncated to `errorLength`), if any.
func report(_ message: String, into error: UnsafeMutablePointer<CChar>?, length errorLength: Int) {
    guard let error, errorLength > 0 else { return }
    var length = 0
    for byte in message.utf8 where length < errorLength - 1 {
        error[length] = CChar(bitPattern: byte)
        length += 1
    }
    error[length] = 0
}

/// The C strings of every fallback step's name, indexed by raw value ("" for ``FallbackStep/none``).
private func stepNames() -> (names: UnsafeMutableBufferPointer<UnsafePointer<CChar>>, text: UnsafeMutableBufferPointer<CChar>) {
    let count = Int(FallbackStep.allCases.map(\.rawValue).max() ?? 0) + 1
    var text: [UInt8] = [0]  // offset 0: ""
    var offsets = [Int](repeating: 0, count: count)
    for step in FallbackStep.allCases where step != .none && step.rawValue >= 0 {
        offsets[Int(step.rawValue)] = text.count
        text += Array(step.name.utf8) + [0]
    }
    let storage = UnsafeMutablePointer<CChar>.allocate(capacity: text.count)
    for (index, byte) in text.enumerated() { storage[index] = CChar(bitPattern: byte) }
    let names = UnsafeMutablePointer<UnsafePointer<CChar>>.allocate(capacity: count)
    for index in 0..<count { (names + index).initialize(to: UnsafePointer(storage + offsets[index])) }
    return (UnsafeMutableBufferPointer(start: names, count: count), UnsafeMutableBufferPointer(start: storage, count: text.count))
}

/// The provider column of ``Handle/providers`` for `snapshot`'s attributes.
private func providerColumn(_ snapshot: Snapshot) -> UnsafeMutablePointer<Int16> {
    let column = UnsafeMutablePointer<Int16>.allocate(capacity: snapshot.attributeCount + 1)
    column.initialize(to: Int16(RDR_NO_MATCH))
    for index in 0..<snapshot.attributeCount {
        (column + index + 1).initialize(
            to: Int16(truncatingIfNeeded: MatchAttributes.loadProvider(from: snapshot.attributes, index: UInt32(index))))
    }
    return column
}

/// The provider of an answer leaf (attribute index + 1, validated against the attribute count
/// when the snapshot was opened), `RDR_NO_MATCH` for 0.
@inline(__always)
private func provider(_ handle: UnsafePointer<Handle>, _ leaf: UInt32) -> Int32 {
    Int32(handle.pointee.providers[Int(truncatingIfNeeded: leaf)])
}

@_cdecl("rdr_abi_version")
public func rdr_abi_version() -> UInt32 { UInt32(RDR_ABI_VERSION) }

@_cdecl("rdr_open")
public func rdr_open(_ path: UnsafePointer<CChar>?, _ message: UnsafeMutablePointer<CChar>?, _ messageLength: Int) -> OpaquePointer? {
    guard let path else {
        report("rdr_open: snapshot path is NULL", into: message, length: messageLength)
        return nil
    }
    do {
        let snapshot = try Snapshot.open(path: String(cString: path))
        let steps = stepNames()
        let handle = UnsafeMutablePointer<Handle>.allocate(capacity: 1)
        handle.initialize(to: Handle(ipv4: snapshot.ipv4.answers, ipv6: snapshot.ipv6.answers, providers: providerColumn(snapshot),
                                     owner: Unmanaged.passRetained(snapshot), readsHeaders: !snapshot.policy.headerNames.isEmpty,
                                     stepNames: steps.names, stepText: steps.text))
        return OpaquePointer(handle)
    } catch {
        report("\(error)", into: message, length: messageLength)
        return nil
    }
}

@_cdecl("rdr_close")
public func rdr_close(_ pointer: OpaquePointer?) {
    guard let pointer else { return }
    let handle = UnsafeMutablePointer<Handle>(pointer)
    handle.pointee.owner.release()
    handle.pointee.providers.deallocate()
    handle.pointee.stepNames.deallocate()
    handle.pointee.stepText.deallocate()
    handle.deinitialize(count: 1)
    handle.deallocate()
}

@_cdecl("rdr_lookup")
public func rdr_lookup(_ pointer: OpaquePointer?, _ address: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
    guard let handle = handle(pointer), let address else { return RDR_NO_MATCH }
    let bytes = UnsafeRawPointer(address)
    if length == 4 {
        return provider(handle, handle.pointee.ipv4.lookup(v4: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))))
    }
    guard length == 16 else { return RDR_NO_MATCH }
    let high = UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
    let low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    if high == 0 && low &>> 32 == 0xffff {  // IPv4-mapped
        return provider(handle, handle.pointee.ipv4.lookup(v4: UInt32(truncatingIfNeeded: low)))
    }
    return provider(handle, handle.pointee.ipv6.lookup(v6: UInt128(high) &<< 64 | UInt128(low)))
}

@_cdecl("rdr_lookup_batch_v4")
public func rdr_lookup_batch_v4(_ pointer: OpaquePointer?, _ addresses: UnsafePointer<UInt32>?,
                                _ results: UnsafeMutablePointer<Int32>?, _ count: Int) -> Int {
    guard let handle = handle(pointer), let addresses, let results, count > 0 else { return 0 }
    // One loop with the trie and the column in locals: independent lookups overlap in the
    // out-of-order window without help.
    let trie = handle.pointee.ipv4
    let providers = handle.pointee.providers
    for index in 0..<count {
        results[index] = Int32(providers[Int(truncatingIfNeeded: trie.lookup(v4: addresses[index]))])
    }
    return count
}

@_cdecl("rdr_provider_count")
public func rdr_provider_count(_ pointer: OpaquePointer?) -> Int32 {
    guard let snapshot = table(pointer) else { return 0 }
    return Int32(snapshot.policy.providers.count)
}

@_cdecl("rdr_provider_name")
public func rdr_provider_name(_ pointer: OpaquePointer?, _ index: Int32) -> UnsafePointer<CChar>? {
    guard let snapshot = table(pointer), index >= 0, Int(index) < snapshot.policy.providers.count else { return nil }
    return snapshot.strings.cString(snapshot.policy.providers[Int(index)].name)
}

@_cdecl("rdr_attribute_source")
public func rdr_attribute_source(_ pointer: OpaquePointer?, _ attribute: Int32) -> UnsafePointer<CChar>? {
    guard let snapshot = table(pointer), attribute >= 0 else { return nil }
    return snapshot.sourceName(ofAttribute: UInt32(attribute))
}

@_cdecl("rdr_decide")
public func rdr_decide(_ pointer: OpaquePointer?, _ request: UnsafePointer<rdr_request>?,
                       _ output: UnsafeMutablePointer<rdr_decision>?,
                       _ buffer: UnsafeMutablePointer<CChar>?, _ bufferLength: Int) -> Int32 {
    guard let handle = handle(pointer), let pointer, let request, let output else { return RDR_EINVAL }
    // The handle keeps the snapshot alive until rdr_close: borrowed, not retained and released
    // around every decision.
    return handle.pointee.owner._withUnsafeGuaranteedRef { snapshot in
        decide(snapshot, handle, pointer, request, output, buffer, bufferLength)
    }
}

/// ``rdr_decide`` with the arguments checked and the snapshot borrowed.
@inline(__always)
private func decide(_ snapshot: Snapshot, _ handle: UnsafePointer<Handle>, _ pointer: OpaquePointer, _ request: UnsafePointer<rdr_request>,
                    _ output: UnsafeMutablePointer<rdr_decision>, _ buffer: UnsafeMutablePointer<CChar>?, _ bufferLength: Int) -> Int32 {
    let fields = request.pointee
    let client = AddressParser.parseAddress(bytes(fields.client, fields.client_len))
    let location = UnsafeMutableRawBufferPointer(start: buffer, count: buffer == nil ? 0 : max(bufferLength, 0))
    // The answer is written where the decision is made: returned out of the closure, the
    // Decision was copied field by field through memory.
    return withHealth(fields, table: pointer, snapshot: snapshot) { health in
        withRequestHeaders(fields, reading: handle.pointee.readsHeaders, snapshot: snapshot) { headers in
            let decision = snapshot.decide(client: client, method: bytes(fields.method, fields.method_len),
                                           target: bytes(fields.path, fields.path_len), headers: headers, health: health, location: location)
            return answer(decision, client: client, snapshot: snapshot, handle: handle, into: output, location: location)
        }
    }
}

/// Writes `decision` into `output` and NUL-terminates a `Location` that left room in `location`;
/// the return code of ``rdr_decide``.
@inline(__always)
private func answer(_ decision: Decision, client: IPAddress?, snapshot: Snapshot, handle: UnsafePointer<Handle>,
                    into output: UnsafeMutablePointer<rdr_decision>, location: UnsafeMutableRawBufferPointer) -> Int32 {
    let strings = snapshot.strings
    let names = snapshot.names(of: decision)
    var answer = rdr_decision()
    answer.action = Int32(decision.action.rawValue)
    answer.status = decision.status
    answer.location_len = decision.locationLength
    answer.provider = decision.attributes.provider
    answer.route = decision.route
    answer.asn = decision.attributes.asn
    answer.attribute = decision.attributeIndex.map { Int32(truncatingIfNeeded: $0) } ?? -1
    if let client {
        answer.family = Int32(client.family.rawValue)
        withUnsafeMutableBytes(of: &answer.client) { client.storeNetworkBytes(into: $0) }
    }
    answer.provider_name = strings.cString(names.provider)
    answer.region = strings.cString(decision.attributes.region)
    answer.route_name = strings.cString(names.route)
    answer.target_host = strings.cString(decision.target)
    answer.pool = decision.pool.index.map { Int32(truncatingIfNeeded: $0) } ?? -1
    answer.pool_name = strings.cString(names.pool)
    answer.member = decision.member
    answer.step = decision.step.rawValue
    let steps = handle.pointee.stepNames
    let step = Int(decision.step.rawValue)
    answer.step_name = step >= 0 && step < steps.count ? steps[step] : steps[0]
    answer.verify = decision.needsVerification ? 1 : 0
    output.pointee = answer
    guard decision.action != .redirect || decision.locationLength <= location.count else { return RDR_ENOSPC }
    if decision.action == .redirect, decision.locationLength < location.count, let buffer = location.baseAddress {
        buffer.storeBytes(of: 0, toByteOffset: decision.locationLength, as: UInt8.self)
    }
    return RDR_OK
}

@_cdecl("rdr_presence_settings")
public func rdr_presence_settings(_ pointer: OpaquePointer?, _ output: UnsafeMutablePointer<rdr_presence>?) -> Int32 {
    guard let snapshot = table(pointer), let output else { return RDR_EINVAL }
    let settings = snapshot.policy.presence
    let verifying = snapshot.policy.routes.filter { route in
        if case .redirect(_, _, _, _, _, true) = route.action { return true }
        return false
    }
    var answer = rdr_presence()
    answer.timeout_ms = settings.timeoutMilliseconds
    answer.present_ttl_ms = settings.presentTTLMilliseconds
    answer.absent_ttl_ms = settings.absentTTLMilliseconds
    answer.cache_entries = settings.cacheEntries
    answer.concurrency = settings.concurrencyPerMirror
    answer.max_checks = settings.maxChecks
    answer.verify_routes = Int32(truncatingIfNeeded: verifying.count)
    answer.verify_route = snapshot.strings.cString(verifying.first?.name ?? .empty)
    output.pointee = answer
    return RDR_OK
}

@_cdecl("rdr_format_prefix")
public func rdr_format_prefix(_ pointer: OpaquePointer?, _ decision: UnsafePointer<rdr_decision>?,
                              _ buffer: UnsafeMutablePointer<CChar>?, _ length: Int) -> Int32 {
    guard let snapshot = table(pointer), let decision, let buffer, length > 0 else { return RDR_EINVAL }
    var answer = decision.pointee
    let family = AddressFamily(rawValue: Int(answer.family))
    guard answer.attribute >= 0, let family,
          let client = withUnsafeBytes(of: &answer.client, { IPAddress(networkBytes: UnsafeRawBufferPointer(rebasing: $0[..<family.byteCount])) }),
          let prefix = snapshot.matchedPrefix(client)
    else {
        buffer[0] = 0
        return 0
    }
    let text = "\(prefix)"
    guard text.utf8.count < length else { return RDR_ENOSPC }
    for (index, byte) in text.utf8.enumerated() { buffer[index] = CChar(bitPattern: byte) }
    buffer[text.utf8.count] = 0
    return Int32(text.utf8.count)
}

@_cdecl("rdr_route_header_count")
public func rdr_route_header_count(_ pointer: OpaquePointer?, _ route: Int32) -> Int32 {
    withTable(pointer, otherwise: 0) { Int32(truncatingIfNeeded: $0.responseHeaders(route: Int(route)).count) }
}

@_cdecl("rdr_route_header")
public func rdr_route_header(_ pointer: OpaquePointer?, _ route: Int32, _ index: Int32,
                             _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                             _ value: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    withTable(pointer, otherwise: RDR_ERANGE) { snapshot in
        let headers = snapshot.responseHeaders(route: Int(route))
        guard index >= 0, Int(index) < headers.count else { return RDR_ERANGE }
        name?.pointee = snapshot.strings.cString(headers[Int(index)].name)
        value?.pointee = snapshot.strings.cString(headers[Int(index)].value)
        return RDR_OK
    }
}

@_cdecl("rdr_header_name_count")
public func rdr_header_name_count(_ pointer: OpaquePointer?) -> Int32 {
    guard let snapshot = table(pointer) else { return 0 }
    return Int32(truncatingIfNeeded: snapshot.policy.headerNames.count)
}

@_cdecl("rdr_header_name")
public func rdr_header_name(_ pointer: OpaquePointer?, _ index: Int32) -> UnsafePointer<CChar>? {
    guard let snapshot = table(pointer), index >= 0, Int(index) < snapshot.policy.headerNames.count else { return nil }
    return snapshot.strings.cString(snapshot.policy.headerNames[Int(index)])
}
