/// Strict address and prefix parsing with `inet_pton` semantics.
///
/// Accepted: dotted-quad IPv4 with 1–3 digit octets and no leading zeros (`0` itself is fine);
/// IPv6 with 1–4 hex digit groups, at most one `::` standing for at least one group, and an
/// optional dotted-quad tail. Rejected: shorthand (`127.1`), octal-looking octets (`010`),
/// zone ids (`fe80::1%eth0`), brackets, white space, signs, and anything longer than an address.
/// All functions work on raw bytes, never allocate, and never trap.
public enum AddressParser {
    /// Parses an address; IPv4-mapped IPv6 yields `.v4`.
    public static func parseAddress(_ text: UnsafeRawBufferPointer) -> IPAddress? {
        let count = text.count
        guard count > 0, count <= 45 else { return nil }
        // Dotted quads first, the common case: text with a colon is never one. An IPv6 address
        // has a colon within its first five bytes (a group has at most four digits); text
        // without one is IPv4 or nothing.
        if let value = parseV4(text, 0, count) { return .v4(value) }
        for index in 0..<min(count, 5) where text[index] == UInt8(ascii: ":") {
            guard let value = parseV6(text, 0, count) else { return nil }
            return IPAddress.unmapped(value)
        }
        return nil
    }

    /// Parses `address/length`. The length is 0–32 (IPv4) or 0–128 (IPv6), decimal, without
    /// sign or leading zeros. Host bits are kept: see ``IPPrefix/init(parsing:)``.
    /// An IPv4-mapped IPv6 prefix of length ≥ 96 becomes the IPv4 prefix it covers.
    public static func parsePrefix(_ text: UnsafeRawBufferPointer) -> (address: IPAddress, length: Int)? {
        var slash = -1
        for index in 0..<text.count where text[index] == UInt8(ascii: "/") {
            slash = index
            break
        }
        guard slash > 0, let length = parseDecimal(text, slash + 1, text.count, maximum: 128) else {
            return nil
        }
        var sawColon = false
        for index in 0..<slash where text[index] == UInt8(ascii: ":") {
            sawColon = true
            break
        }
        if sawColon {
            guard slash <= 45, let value = parseV6(text, 0, slash) else { return nil }
            if value &>> 32 == 0xffff && length >= 96 {
                return (.v4(UInt32(truncatingIfNeeded: value)), length - 96)
            }
            return (.v6(value), length)
        }
        guard length <= 32, let value = parseV4(text, 0, slash) else { return nil }
        return (.v4(value), length)
    }

    /// A decimal number in `text[start..<end]` with no sign and no leading zero, at most `maximum`.
    static func parseDecimal(_ text: UnsafeRawBufferPointer, _ start: Int, _ end: Int, maximum: Int) -> Int? {
        guard start < end, end - start <= 3 else { return nil }
        if text[start] == UInt8(ascii: "0") && end - start > 1 { return nil }
        var value = 0
        for index in start..<end {
            let digit = Int(text[index]) &- 48
            guard digit >= 0 && digit <= 9 else { return nil }
            value = value &* 10 &+ digit
        }
        return value <= maximum ? value : nil
    }

    /// A dotted quad in `text[start..<end]`: one pass, octet by octet, the decision path's parse
    /// of a client address.
    static func parseV4(_ text: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UInt32? {
        @inline(__always) func digit(_ index: Int) -> UInt32? {
            guard index < end else { return nil }
            let value = UInt32(text[index] &- UInt8(ascii: "0"))
            return value <= 9 ? value : nil
        }
        var value: UInt32 = 0
        var index = start
        for octetIndex in 0..<4 {
            if octetIndex > 0 {
                guard index < end, text[index] == UInt8(ascii: ".") else { return nil }
                index &+= 1
            }
            // One to three digits, none after a leading zero, at most 255.
            guard var octet = digit(index) else { return nil }
            index &+= 1
            if octet != 0, let second = digit(index) {
                octet = octet &* 10 &+ second
                index &+= 1
                if let third = digit(index) {
                    octet = octet &* 10 &+ third
                    index &+= 1
                    guard octet <= 255 else { return nil }
                }
            }
            value = value &<< 8 | octet
        }
        return index == end ? value : nil
    }

    /// The value of one hex digit, or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt16? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt16(byte &- 48)
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt16(byte &- 87)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt16(byte &- 55)
        default: return nil
        }
    }

    /// An IPv6 address in `text[start..<end]`.
    static func parseV6(_ text: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UInt128? {
        var groups: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var gap = -1
        var index = start
        func store(_ group: UInt16) {
            withUnsafeMutableBytes(of: &groups) { $0.storeBytes(of: group, toByteOffset: count &* 2, as: UInt16.self) }
            count &+= 1
        }
        if end - start >= 2 && text[start] == UInt8(ascii: ":") {
            guard text[start &+ 1] == UInt8(ascii: ":") else { return nil }
            gap = 0
            index = start &+ 2
        }
        while index < end {
            // One group, or a dotted-quad tail.
            var digits = 0
            var group: UInt16 = 0
            var cursor = index
            while cursor < end, let digit = hexValue(text[cursor]) {
                guard digits < 4 else { return nil }
                group = group &<< 4 | digit
                digits &+= 1
                cursor &+= 1
            }
            if cursor < end && text[cursor] == UInt8(ascii: ".") {
                guard count <= 6, let v4 = parseV4(text, index, end) else { return nil }
                store(UInt16(truncatingIfNeeded: v4 &>> 16))
                store(UInt16(truncatingIfNeeded: v4))
                index = end
                break
            }
            guard digits > 0, count < 8 else { return nil }
            store(group)
            index = cursor
            guard index < end else { break }
            guard text[index] == UInt8(ascii: ":") else { return nil }
            index &+= 1
            if index < end && text[index] == UInt8(ascii: ":") {
                guard gap < 0 else { return nil }
                gap = count
                index &+= 1
            } else if index == end {
                return nil  // a single trailing colon
            }
        }
        if gap >= 0 {
            guard count < 8 else { return nil }  // "::" must stand for at least one group
        } else {
            guard count == 8 else { return nil }
        }
        var value: UInt128 = 0
        withUnsafeBytes(of: &groups) { raw in
            let missing = 8 &- count
            var position = 0
            for slot in 0..<count {
                if slot == gap { position &+= missing }
                let group = raw.load(fromByteOffset: slot &* 2, as: UInt16.self)
                value |= UInt128(group) &<< (112 &- 16 &* position)
                position &+= 1
            }
        }
        return value
    }
}
