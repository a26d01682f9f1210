// The C ABI of libredirector.so, declared in include/redirector.h.
//
// The header is the only declaration: `CRedirector` imports it, so `rdr_request`, `rdr_decision`,
// the `RDR_*` codes and the ABI version below are what a C compiler sees, laid out by the compiler.
//
// Every entry point is synchronous, starts no threads, and never traps: pointers are checked for
// NULL, lengths are checked, and all indices into the snapshot were validated when it was opened.
// Only rdr_open and rdr_close allocate.

import CRedirector
import RedirectorCore

/// What `rdr_table *` points to: the answer tries' raw views, so lookups touch no reference counts,
/// and the snapshot that owns their memory (retained until rdr_close).
private struct Handle {
    let ipv4: Poptrie
    let ipv6: Poptrie
    let attributes: UnsafeRawPointer
    let owner: Unmanaged<Snapshot>
}

@inline(__always)
private func handle(_ pointer: OpaquePointer?) -> UnsafePointer<Handle>? {
    pointer.map { UnsafePointer<Handle>($0) }
}

@inline(__always)
private func table(_ pointer: OpaquePointer?) -> Snapshot? {
    handle(pointer)?.pointee.owner.takeUnretainedValue()
}

/// The provider of an answer leaf (attribute index + 1), `RDR_NO_MATCH` for none.
@inline(__always)
private func provider(_ handle: UnsafePointer<Handle>, _ leaf: UInt32) -> Int32 {
    leaf == 0 ? RDR_NO_MATCH : MatchAttributes.loadProvider(from: handle.pointee.attributes, index: leaf &- 1)
}

@_cdecl("rdr_abi_version")
public func rdr_abi_version() -> UInt32 { UInt32(RDR_ABI_VERSION) }

@_cdecl("rdr_open")
public func rdr_open(_ path: UnsafePointer<CChar>?, _ error: UnsafeMutablePointer<CChar>?, _ errorLength: Int) -> OpaquePointer? {
    func report(_ message: String) -> OpaquePointer? {
        guard let error, errorLength > 0 else { return nil }
        var length = 0
        for byte in message.utf8 where length < errorLength - 1 {
            error[length] = CChar(bitPattern: byte)
            length += 1
        }
        error[length] = 0
        return nil
    }
    guard let path else { return report("rdr_open: snapshot path is NULL") }
    do {
        let snapshot = try Snapshot.open(path: String(cString: path))
        let handle = UnsafeMutablePointer<Handle>.allocate(capacity: 1)
        handle.initialize(to: Handle(ipv4: snapshot.ipv4.answers, ipv6: snapshot.ipv6.answers, attributes: snapshot.attributes,
                                     owner: Unmanaged.passRetained(snapshot)))
        return OpaquePointer(handle)
    } catch {
        return report("\(error)")
    }
}

@_cdecl("rdr_close")
public func rdr_close(_ pointer: OpaquePointer?) {
    guard let pointer else { return }
    let handle = UnsafeMutablePointer<Handle>(pointer)
    handle.pointee.owner.release()
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
    // The answer leaves go through the caller's result array, then become provider indices.
    results.withMemoryRebound(to: UInt32.self, capacity: count) { packed in
        handle.pointee.ipv4.lookup(v4: addresses, count: count, into: packed)
    }
    for index in 0..<count {
        results[index] = provider(handle, UInt32(bitPattern: results[index]))
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

/// A (pointer, length) field of `rdr_request` as bytes; a NULL pointer or a zero length reads as empty.
@inline(__always)
private func bytes(_ start: UnsafePointer<CChar>?, _ count: Int) -> UnsafeRawBufferPointer {
    guard let start, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: start, count: count)
}

@_cdecl("rdr_decide")
public func rdr_decide(_ pointer: OpaquePointer?, _ request: UnsafePointer<rdr_request>?,
                       _ output: UnsafeMutablePointer<rdr_decision>?,
                       _ buffer: UnsafeMutablePointer<CChar>?, _ bufferLength: Int) -> Int32 {
    guard let snapshot = table(pointer), let request, let output else { return RDR_EINVAL }
    let fields = request.pointee
    let client = AddressParser.parseAddress(bytes(fields.client, fields.client_len))
    let location = UnsafeMutableRawBufferPointer(start: buffer, count: buffer == nil ? 0 : max(bufferLength, 0))
    let decision = snapshot.decide(client: client, method: bytes(fields.method, fields.method_len),
                                   target: bytes(fields.path, fields.path_len), location: location)
    let strings = snapshot.strings
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
    let providerName = decision.attributes.provider >= 0
        ? snapshot.policy.providers[Int(decision.attributes.provider)].name : StringRef.empty
    let routeName = decision.route >= 0 ? snapshot.policy.routes[Int(decision.route)].name : StringRef.empty
    answer.provider_name = strings.cString(providerName)
    answer.region = strings.cString(decision.attributes.region)
    answer.route_name = strings.cString(routeName)
    answer.target_host = strings.cString(decision.target)
    output.pointee = answer
    guard decision.action != .redirect || decision.locationLength <= location.count else { return RDR_ENOSPC }
    if decision.action == .redirect, decision.locationLength < location.count, let buffer {
        buffer[decision.locationLength] = 0
    }
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
    guard let snapshot = table(pointer), route >= 0, Int(route) < snapshot.policy.routes.count,
          case .respond(_, let headers) = snapshot.policy.routes[Int(route)].action else { return 0 }
    return Int32(headers.count)
}

@_cdecl("rdr_route_header")
public func rdr_route_header(_ pointer: OpaquePointer?, _ route: Int32, _ index: Int32,
                             _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                             _ value: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> Int32 {
    guard let snapshot = table(pointer), route >= 0, Int(route) < snapshot.policy.routes.count,
          case .respond(_, let headers) = snapshot.policy.routes[Int(route)].action,
          index >= 0, Int(index) < headers.count else { return RDR_ERANGE }
    name?.pointee = snapshot.strings.cString(headers[Int(index)].name)
    value?.pointee = snapshot.strings.cString(headers[Int(index)].value)
    return RDR_OK
}
