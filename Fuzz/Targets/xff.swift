// Fuzz target `xff`: ClientAddressResolver (X-Forwarded-For / X-Real-IP resolution), checked
// against an independent byte-level reference of nginx realip with `real_ip_recursive on`.
//
// Input: byte 0 picks the peer and options; the rest is split on '\n' into lines: when bit 6 of
// byte 0 is set the first line is the X-Real-IP value; when bit 7 is set the next line is the peer
// text; every other line is one X-Forwarded-For header value.
import Glibc
import RedirectorCore

let trustedPrefixes = ["10.0.0.0/8", "127.0.0.0/8", "::1/128", "2001:db8::/32", "192.0.2.128/25"].map { IPPrefix($0)! }
let resolver = ClientAddressResolver(trustedProxies: trustedPrefixes)
let fixedPeers = ["10.0.0.1", "127.0.0.2", "::1", "2001:db8::7", "203.0.113.9", "2a00::1", "192.0.2.200", "192.0.2.1"]
    .map { IPAddress($0)! }

func referenceTrusted(_ address: IPAddress) -> Bool {
    trustedPrefixes.contains { $0.contains(address) }
}

/// Parses with inet_pton (no NUL inside), the contract's strict parser, mapped IPv6 as IPv4.
func referenceParse(_ bytes: ArraySlice<UInt8>) -> IPAddress? {
    guard !bytes.isEmpty, !bytes.contains(0) else { return nil }
    var text = bytes.map { CChar(bitPattern: $0) }
    text.append(0)
    var output = [UInt8](repeating: 0, count: 16)
    if !bytes.contains(UInt8(ascii: ":")) {
        guard inet_pton(AF_INET, text, &output) == 1 else { return nil }
        return .v4(output[..<4].reduce(0) { $0 << 8 | UInt32($1) })
    }
    guard inet_pton(AF_INET6, text, &output) == 1 else { return nil }
    let value = output.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
    return value >> 32 == 0xffff ? .v4(UInt32(truncatingIfNeeded: value)) : .v6(value)
}

/// Trims spaces and tabs on both sides.
func trim(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var slice = bytes
    while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
    while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
    return slice
}

/// nginx realip (`real_ip_recursive on`) over bytes, with the resolver's hop bound.
func reference(peer: IPAddress, headers: [[UInt8]], realIP: [UInt8]?) -> IPAddress {
    guard referenceTrusted(peer) else { return peer }
    var current = peer
    var hops = 0
    for header in headers.reversed() {
        for entry in header.split(separator: 0x2c, omittingEmptySubsequences: false).reversed() {
            let trimmed = trim(entry)
            if trimmed.isEmpty { continue }
            hops += 1
            guard hops <= ClientAddressResolver.maximumHops, let address = referenceParse(trimmed) else { return current }
            current = address
            if !referenceTrusted(address) { return address }
        }
    }
    if headers.isEmpty, let realIP, let address = referenceParse(trim(realIP[...])) { return address }
    return current
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzXFF(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let control = bytes[0]
    var lines = bytes[1...].split(separator: 0x0a, omittingEmptySubsequences: false).map { Array($0) }
    var realIP: [UInt8]?
    if control & 0x40 != 0, !lines.isEmpty { realIP = lines.removeFirst() }
    var peer = fixedPeers[Int(control & 7)]
    if control & 0x80 != 0, !lines.isEmpty {
        let text = lines.removeFirst()
        if let parsed = text.withUnsafeBytes({ AddressParser.parseAddress($0) }) { peer = parsed }
    }
    // Swift Strings of the same bytes, as the sidecar passes them (invalid UTF-8 is replaced, so
    // the reference sees the replaced bytes too).
    let headerStrings = lines.map { String(decoding: $0, as: UTF8.self) }
    let realIPString = realIP.map { String(decoding: $0, as: UTF8.self) }
    let answer = resolver.resolve(peer: peer, forwardedFor: headerStrings, realIP: realIPString)
    let expected = reference(peer: peer, headers: headerStrings.map { Array($0.utf8) },
                             realIP: realIPString.map { Array($0.utf8) })
    if answer != expected || resolver.isTrusted(peer) != referenceTrusted(peer) {
        fputs("FUZZ FAILURE: resolve gave \(answer), reference \(expected) (peer \(peer), headers \(headerStrings.map { Array($0.utf8) }), realIP \(String(describing: realIPString)))\n", stderr)
        abort()
    }
    // The security property stated plainly: an untrusted peer's headers never matter.
    if !referenceTrusted(peer) && answer != peer { abort() }
    return 0
}
