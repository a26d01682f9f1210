// The C ABI of libredirector.so, declared in include/redirector.h.
//
// Every entry point is synchronous, starts no threads, and never traps: pointers are checked for
// NULL, lengths are checked, and all indices into the snapshot were validated when it was opened.
// Only rdr_open and rdr_close allocate.

import RedirectorCore

/// The ABI version (`RDR_ABI_VERSION` in the header).
private let abiVersion: UInt32 = 1

/// Layout of `rdr_request` (8 pointer-sized fields).
private enum RequestLayout {
    static let client = 0, method = 2, host = 4, path = 6
}

/// What `rdr_table *` points to: the matchers' raw views, so lookups touch no reference counts,
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

/// The provider of a packed match, -1 for none.
@inline(__always)
private func provider(_ handle: UnsafePointer<Handle>, _ packed: UInt32) -> Int32 {
    packed == 0 ? -1 : MatchAttributes.loadProvider(from: handle.pointee.attributes, index: PackedMatch.value(packed))
}

@_cdecl("rdr_abi_version")
public func rdr_abi_version() -> UInt32 { abiVersion }

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
        handle.initialize(to: Handle(ipv4: snapshot.ipv4, ipv6: snapshot.ipv6, attributes: snapshot.attributes,
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
    guard let handle = handle(pointer), let address else { return -1 }
    let bytes = UnsafeRawPointer(address)
    if length == 4 {
        return provider(handle, handle.pointee.ipv4.lookup(v4: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))))
    }
    guard length == 16 else { return -1 }
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
    // The packed matches go through the caller's result array, then become provider indices.
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

/// Reads a (pointer, length) pair of `rdr_request`; a NULL pointer with a length reads as empty.
@inline(__always)
private func field(_ request: UnsafeRawPointer, _ slot: Int) -> UnsafeRawBufferPointer {
    let stride = MemoryLayout<Int>.stride
    let start = request.load(fromByteOffset: slot * stride, as: UnsafeRawPointer?.self)
    let count = request.load(fromByteOffset: (slot + 1) * stride, as: Int.self)
    guard let start, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: start, count: count)
}

/// Layout of `rdr_decision`, computed from the C declaration order.
private enum DecisionLayout {
    static let action = 0, status = 4, locationLength = 8, provider = 16, route = 20, asn = 24
    static let prefixLength = 28, family = 32, prefix = 36, providerName = 56, region = 64, routeName = 72, targetHost = 80
}

@_cdecl("rdr_decide")
public func rdr_decide(_ pointer: OpaquePointer?, _ request: UnsafeRawPointer?, _ output: UnsafeMutableRawPointer?,
                       _ buffer: UnsafeMutableRawPointer?, _ bufferLength: Int) -> Int32 {
    guard let snapshot = table(pointer), let request, let output else { return -2 }
    let client = AddressParser.parseAddress(field(request, RequestLayout.client))
    let location = UnsafeMutableRawBufferPointer(start: buffer, count: buffer == nil ? 0 : max(bufferLength, 0))
    let decision = snapshot.decide(client: client, method: field(request, RequestLayout.method),
                                   target: field(request, RequestLayout.path), location: location)
    let strings = snapshot.strings
    output.storeBytes(of: decision.action.rawValue, toByteOffset: DecisionLayout.action, as: Int32.self)
    output.storeBytes(of: decision.status, toByteOffset: DecisionLayout.status, as: Int32.self)
    output.storeBytes(of: decision.locationLength, toByteOffset: DecisionLayout.locationLength, as: Int.self)
    output.storeBytes(of: decision.attributes.provider, toByteOffset: DecisionLayout.provider, as: Int32.self)
    output.storeBytes(of: decision.route, toByteOffset: DecisionLayout.route, as: Int32.self)
    output.storeBytes(of: decision.attributes.asn, toByteOffset: DecisionLayout.asn, as: UInt32.self)
    var prefixLength: Int32 = -1
    var family: Int32 = 0
    var network = (UInt64(0), UInt64(0))
    if let prefix = decision.match?.prefix {
        prefixLength = Int32(prefix.length)
        switch prefix.network {
        case .v4(let value):
            family = 4
            network.0 = UInt64(value.bigEndian)
        case .v6(let value):
            family = 6
            network = (UInt64(truncatingIfNeeded: value &>> 64).bigEndian, UInt64(truncatingIfNeeded: value).bigEndian)
        }
    }
    output.storeBytes(of: prefixLength, toByteOffset: DecisionLayout.prefixLength, as: Int32.self)
    output.storeBytes(of: family, toByteOffset: DecisionLayout.family, as: Int32.self)
    output.storeBytes(of: network.0, toByteOffset: DecisionLayout.prefix, as: UInt64.self)
    output.storeBytes(of: network.1, toByteOffset: DecisionLayout.prefix + 8, as: UInt64.self)
    let providerName = decision.attributes.provider >= 0
        ? snapshot.policy.providers[Int(decision.attributes.provider)].name : StringRef.empty
    let routeName = decision.route >= 0 ? snapshot.policy.routes[Int(decision.route)].name : StringRef.empty
    output.storeBytes(of: strings.cString(providerName), toByteOffset: DecisionLayout.providerName, as: UnsafePointer<CChar>.self)
    output.storeBytes(of: strings.cString(decision.attributes.region), toByteOffset: DecisionLayout.region, as: UnsafePointer<CChar>.self)
    output.storeBytes(of: strings.cString(routeName), toByteOffset: DecisionLayout.routeName, as: UnsafePointer<CChar>.self)
    output.storeBytes(of: strings.cString(decision.target), toByteOffset: DecisionLayout.targetHost, as: UnsafePointer<CChar>.self)
    guard decision.action != .redirect || decision.locationLength <= location.count else { return -1 }
    if decision.action == .redirect, decision.locationLength < location.count, let buffer {
        buffer.storeBytes(of: 0, toByteOffset: decision.locationLength, as: UInt8.self)
    }
    return 0
}

@_cdecl("rdr_format_prefix")
public func rdr_format_prefix(_ decision: UnsafeRawPointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ length: Int) -> Int32 {
    guard let decision, let buffer, length > 0 else { return -1 }
    let prefixLength = decision.loadUnaligned(fromByteOffset: DecisionLayout.prefixLength, as: Int32.self)
    let family = decision.loadUnaligned(fromByteOffset: DecisionLayout.family, as: Int32.self)
    guard prefixLength >= 0, family == 4 || family == 6 else {
        buffer[0] = 0
        return 0
    }
    let bytes = UnsafeRawBufferPointer(start: decision + DecisionLayout.prefix, count: family == 4 ? 4 : 16)
    guard let address = IPAddress(networkBytes: bytes) else {
        buffer[0] = 0
        return 0
    }
    let text = "\(address)/\(prefixLength)"
    guard text.utf8.count < length else { return -1 }
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
          index >= 0, Int(index) < headers.count else { return -1 }
    name?.pointee = snapshot.strings.cString(headers[Int(index)].name)
    value?.pointee = snapshot.strings.cString(headers[Int(index)].value)
    return 0
}
