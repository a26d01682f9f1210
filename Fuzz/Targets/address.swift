// Fuzz target `address`: AddressParser.parseAddress / parsePrefix, IPPrefix and the textual
// round trip, checked differentially against glibc's inet_pton inside the fuzzer.
//
// Any disagreement with inet_pton (for inputs without NUL bytes, which a C string cannot carry)
// traps, so libFuzzer reports it as a crash with the input that caused it.
import Glibc
import RedirectorCore

/// glibc's answer for `bytes` as an address of `family`: network-order bytes, or nil.
func pton(_ family: Int32, _ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
    var text = [CChar](repeating: 0, count: bytes.count + 1)
    for index in 0..<bytes.count { text[index] = CChar(bitPattern: bytes[index]) }
    var output = [UInt8](repeating: 0, count: 16)
    guard inet_pton(family, text, &output) == 1 else { return nil }
    return Array(output[..<(family == AF_INET ? 4 : 16)])
}

/// What the contract says parseAddress must return for `bytes` (no NUL inside).
func expectedAddress(_ bytes: UnsafeRawBufferPointer) -> IPAddress? {
    if !bytes.contains(UInt8(ascii: ":")), let v4 = pton(AF_INET, bytes) {
        return .v4(v4.reduce(0) { $0 << 8 | UInt32($1) })
    }
    if bytes.contains(UInt8(ascii: ":")), let v6 = pton(AF_INET6, bytes) {
        let value = v6.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        return value >> 32 == 0xffff ? .v4(UInt32(truncatingIfNeeded: value)) : .v6(value)
    }
    return nil
}

/// What parsePrefix must return: inet_pton for the address, a strict decimal length.
func expectedPrefix(_ bytes: UnsafeRawBufferPointer) -> (IPAddress, Int)? {
    guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")), slash > 0 else { return nil }
    let address = UnsafeRawBufferPointer(rebasing: bytes[..<slash])
    let digits = UnsafeRawBufferPointer(rebasing: bytes[(slash + 1)...])
    guard digits.count >= 1, digits.count <= 3, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
          digits.count == 1 || digits[0] != 0x30 else { return nil }
    let length = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    if !address.contains(UInt8(ascii: ":")) {
        guard length <= 32, let v4 = pton(AF_INET, address) else { return nil }
        return (.v4(v4.reduce(0) { $0 << 8 | UInt32($1) }), length)
    }
    guard length <= 128, let v6 = pton(AF_INET6, address) else { return nil }
    let value = v6.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
    if value >> 32 == 0xffff && length >= 96 { return (.v4(UInt32(truncatingIfNeeded: value)), length - 96) }
    return (.v6(value), length)
}

func check(_ condition: Bool, _ message: @autoclosure () -> String, _ input: UnsafeRawBufferPointer) {
    guard !condition else { return }
    let shown = TextEscaping.displayBytes(input)
    fputs("FUZZ FAILURE: \(message()) for input \"\(shown)\"\n", stderr)
    abort()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddress(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let address = AddressParser.parseAddress(input)
    let prefix = AddressParser.parsePrefix(input)
    let hasNUL = input.contains(0)
    if hasNUL {
        check(address == nil && prefix == nil, "input with NUL accepted", input)
        return 0
    }
    // Differential: exactly inet_pton's answer (mapped IPv6 as IPv4).
    let expected = expectedAddress(input)
    check(address == expected, "parseAddress \(String(describing: address)) != inet_pton \(String(describing: expected))", input)
    let expectedP = expectedPrefix(input)
    check(prefix?.address == expectedP?.0 && prefix?.length == expectedP?.1,
          "parsePrefix \(String(describing: prefix)) != reference \(String(describing: expectedP))", input)

    // Round trips: canonical text parses back to the same address / prefix.
    if let address {
        let text = address.description
        check(IPAddress(text) == address, "round trip of \(text)", input)
        let bytes = address.networkBytes
        let back = bytes.withUnsafeBytes { IPAddress(networkBytes: $0) }
        check(back == address, "networkBytes round trip of \(text)", input)
    }
    if let (network, length) = prefix {
        let full = IPPrefix(network: network, length: length)
        check(full.contains(network), "prefix \(full) does not contain its own address", input)
        check(full.contains(full.lastAddress), "prefix \(full) does not contain its last address", input)
        check(IPPrefix(full.description) == full, "prefix round trip of \(full)", input)
        let text = String(decoding: input, as: UTF8.self)
        check(IPPrefix(text) == full, "IPPrefix(text) disagrees with parsePrefix", input)
    }
    return 0
}
