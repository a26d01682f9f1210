import RedirectorCore
import Testing

/// The strict parser (DESIGN.md §3.1): inet_pton semantics, mapped IPv6 → IPv4, host bits masked and reported.
@Suite struct AddressParserTests {
    // MARK: IPv4

    @Test(arguments: [
        ("0.0.0.0", UInt32(0)),
        ("255.255.255.255", 0xFFFF_FFFF),
        ("1.2.3.4", 0x0102_0304),
        ("10.0.0.1", 0x0A00_0001),
        ("192.168.100.200", 0xC0A8_64C8),
        ("0.10.100.0", 0x000A_6400),
    ])
    func validIPv4(text: String, value: UInt32) {
        #expect(IPAddress(text) == .v4(value))
    }

    @Test(arguments: [
        // Leading zeros (octal-looking octets).
        "010.1.1.1", "1.2.3.04", "01.2.3.4", "00.0.0.0", "1.2.3.00", "1.2.3.000", "0255.1.1.1",
        // Shorthand forms inet_aton accepts and inet_pton does not.
        "127.1", "1.2.3", "1.2", "1", "2130706433", "127.0.1",
        // Extra or empty octets.
        "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2..3.4", "1.2.3.4.5", "1.2.3.", "...", "1.2.3.4..",
        // Out of range.
        "256.1.1.1", "1.2.3.256", "999.1.1.1", "1000.1.1.1", "1.2.3.2555",
        // Hex and other radixes.
        "0x1.2.3.4", "0x7f000001", "1.2.3.0x4", "0x0a.0.0.1", "1.2.3.4e",
        // White space, signs, brackets, zones, ports.
        " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n", "\t1.2.3.4", "1.2. 3.4", "1.2.3.4\r",
        "+1.2.3.4", "-1.2.3.4", "1.2.3.+4", "1.2.3.-4",
        "[1.2.3.4]", "1.2.3.4%eth0", "1.2.3.4:80", "1.2.3.4/32",
        // Empty, NUL, non-ASCII digits.
        "", "\0", "1.2.3.4\0", "1.2.3.4\0junk", "１.2.3.4", "1.2.3.٤",
    ])
    func invalidIPv4(text: String) {
        #expect(IPAddress(text) == nil)
    }

    // MARK: IPv6

    static let validIPv6Cases: [(String, UInt128)] = [
        ("::", 0),
        ("::1", 1),
        ("1::", 0x0001_0000_0000_0000_0000_0000_0000_0000),
        ("2001:db8::1", 0x2001_0db8_0000_0000_0000_0000_0000_0001),
        ("2001:DB8::1", 0x2001_0db8_0000_0000_0000_0000_0000_0001),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", 0x2001_0db8_0000_0000_0000_0000_0000_0001),
        ("1:2:3:4:5:6:7:8", 0x0001_0002_0003_0004_0005_0006_0007_0008),
        // "::" standing for exactly one group, at each end and in the middle.
        ("1:2:3:4:5:6:7::", 0x0001_0002_0003_0004_0005_0006_0007_0000),
        ("::2:3:4:5:6:7:8", 0x0000_0002_0003_0004_0005_0006_0007_0008),
        ("1:2:3::5:6:7:8", 0x0001_0002_0003_0000_0005_0006_0007_0008),
        ("fe80::1", 0xfe80_0000_0000_0000_0000_0000_0000_0001),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0xffff_ffff_ffff_ffff_ffff_ffff_ffff_ffff),
        // IPv4 tails that stay IPv6: compatible, translated, NAT64, full width.
        ("::1.2.3.4", 0x0000_0000_0000_0000_0000_0000_0102_0304),
        ("::ffff:0:1.2.3.4", 0x0000_0000_0000_0000_ffff_0000_0102_0304),
        ("64:ff9b::1.2.3.4", 0x0064_ff9b_0000_0000_0000_0000_0102_0304),
        ("1:2:3:4:5:6:1.2.3.4", 0x0001_0002_0003_0004_0005_0006_0102_0304),
        ("::1:2:3:4:5:1.2.3.4", 0x0000_0001_0002_0003_0004_0005_0102_0304),
        ("1::1.2.3.4", 0x0001_0000_0000_0000_0000_0000_0102_0304),
        ("0000:0000:0000:0000:0000:0001:255.255.255.255", 0x0000_0000_0000_0000_0000_0001_ffff_ffff),
    ]

    @Test(arguments: validIPv6Cases)
    func validIPv6(text: String, value: UInt128) {
        #expect(IPAddress(text) == .v6(value))
    }

    @Test(arguments: [
        // Zones and brackets.
        "fe80::1%eth0", "fe80::1%1", "fe80::1%", "[::1]", "[::1]:80", "[2001:db8::1]",
        // Too many colons, two "::".
        ":::", ":::1", "1:::2", "::1::2", "1::2::3", "1::2:3::",
        // "::" must stand for at least one group.
        "1:2:3:4:5:6:7::8", "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8::", "1::2:3:4:5:6:7:8",
        "1:2:3:4:5:6::1.2.3.4", "::1:2:3:4:5:6:1.2.3.4",
        // Wrong group counts.
        "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:1.2.3.4",
        // Five-digit groups.
        "12345::", "1:23456::", "::00001", "0:0:0:0:0:0:0:00000",
        // Leading or trailing single colon, lone colon.
        ":", ":1", ":1::", "1:", "1::2:", "1:2:3:4:5:6:7:8:", ":1:2:3:4:5:6:7:8",
        // Bad hex, signs, white space.
        "g::1", "::g", "::-1", "::+1", "0x::1", " ::1", "::1 ", ":: 1", "::1\n", "::1\0",
        // IPv4 tail placement and syntax.
        "::1.2.3", "::1.2.3.4.5", "::01.2.3.4", "::1.2.3.04", "::256.1.1.1", "::1.2.3.4:5", "1.2.3.4::",
        "::1.2.3.4::", "::ffff:1.2.3.4.", "::ffff:.1.2.3.4", "::ffff:1.2.3", "::1a.2.3.4", "::ffff:1.2.3.4%eth0",
        "::1234.1.1.1", "::ffff:127.1", "1.2.3.4:1::",
        // Prefix syntax is not an address.
        "::1/128", "::/0",
        // Too long to be any address.
        "0000:0000:0000:0000:0000:0000:0000:00001", "0000:0000:0000:0000:0000:00000:255.255.255.255",
    ])
    func invalidIPv6(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test(arguments: [
        ("::ffff:1.2.3.4", UInt32(0x0102_0304)),
        ("::FFFF:1.2.3.4", 0x0102_0304),
        ("0:0:0:0:0:ffff:1.2.3.4", 0x0102_0304),
        ("0000:0000:0000:0000:0000:FFFF:255.255.255.255", 0xFFFF_FFFF),
        ("::ffff:102:304", 0x0102_0304),
        ("::ffff:0.0.0.0", 0),
        ("::ffff:0:0", 0),
    ])
    func mappedIPv6IsIPv4(text: String, value: UInt32) {
        #expect(IPAddress(text) == .v4(value))
    }

    @Test func substringsAndOtherStringProtocols() {
        let line = "client=192.0.2.7;peer=2001:db8::1"
        let parts = line.split(separator: ";").map { $0.split(separator: "=")[1] }
        #expect(IPAddress(parts[0]) == .v4(0xC000_0207))
        #expect(IPAddress(parts[1]) == .v6(0x2001_0db8_0000_0000_0000_0000_0000_0001))
        #expect(IPPrefix("192.0.2.0/24".dropLast(2)) == nil)  // "192.0.2.0/" is not a prefix
        #expect(IPPrefix("192.0.2.0/24x".dropLast()) == prefix("192.0.2.0/24"))
    }

    @Test func networkBytesRoundTrip() {
        var generator = SeededGenerator(seed: 1)
        for _ in 0..<2000 {
            let v4 = IPAddress.v4(UInt32(truncatingIfNeeded: generator.next()))
            let v6 = IPAddress.v6(generator.next128() | UInt128(1) << 100)  // never mapped
            for address in [v4, v6] {
                let bytes = address.networkBytes
                #expect(bytes.count == (address.family.byteCount))
                #expect(bytes.withUnsafeBytes { IPAddress(networkBytes: $0) } == address)
            }
        }
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]
        #expect(mapped.withUnsafeBytes { IPAddress(networkBytes: $0) } == address("192.0.2.1"))
        let translated: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 192, 0, 2, 1]
        #expect(translated.withUnsafeBytes { IPAddress(networkBytes: $0) } == address("::ffff:0:192.0.2.1"))
        for count in [0, 1, 3, 5, 15, 17, 32] {
            #expect([UInt8](repeating: 1, count: count).withUnsafeBytes { IPAddress(networkBytes: $0) } == nil)
        }
    }

    @Test(arguments: [
        ("::", "::"), ("::1", "::1"), ("1::", "1::"), ("2001:0DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // the first of two equal runs is compressed
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),  // a single zero group is not compressed
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),  // the longest run wins
        ("::1.2.3.4", "::102:304"), ("::ffff:1.2.3.4", "1.2.3.4"), ("001.002.003.004", nil),
        ("10.0.0.255", "10.0.0.255"),
    ] as [(String, String?)])
    func canonicalText(text: String, expected: String?) {
        #expect(IPAddress(text)?.description == expected)
    }

    @Test func descriptionParsesBack() {
        var generator = SeededGenerator(seed: 2)
        for _ in 0..<5000 {
            var value = generator.next128()
            // Vary the zero runs so every compression position occurs.
            for group in 0..<8 where generator.next() % 3 == 0 { value &= ~(UInt128(0xffff) << (16 * group)) }
            if value >> 32 == 0xffff { value |= 1 << 127 }
            let v6 = IPAddress.v6(value)
            #expect(IPAddress(v6.description) == v6, "\(v6)")
            let v4 = IPAddress.v4(UInt32(truncatingIfNeeded: generator.next()))
            #expect(IPAddress(v4.description) == v4, "\(v4)")
        }
    }

    @Test func ordering() {
        #expect(address("255.255.255.255") < address("::"))
        #expect(address("1.2.3.4") < address("1.2.3.5"))
        #expect(address("::1") < address("::2"))
        #expect(!(address("::2") < address("::1")))
        #expect(prefix("10.0.0.0/8") < prefix("10.0.0.0/16"))
        #expect(prefix("10.0.0.0/16") < prefix("10.0.1.0/24"))
    }

    // MARK: Prefixes

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8", false),
        ("10.1.2.3/8", "10.0.0.0/8", true),
        ("0.0.0.0/0", "0.0.0.0/0", false),
        ("1.2.3.4/0", "0.0.0.0/0", true),
        ("1.2.3.4/32", "1.2.3.4/32", false),
        ("255.255.255.255/31", "255.255.255.254/31", true),
        ("192.0.2.128/25", "192.0.2.128/25", false),
        ("::/0", "::/0", false),
        ("::1/0", "::/0", true),
        ("::1/128", "::1/128", false),
        ("2001:db8::/32", "2001:db8::/32", false),
        ("2001:db8::1/32", "2001:db8::/32", true),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/127", "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe/127", true),
        // IPv4-mapped prefixes of length ≥ 96 become the IPv4 prefix they cover.
        ("::ffff:1.2.3.0/120", "1.2.3.0/24", false),
        ("::ffff:1.2.3.4/120", "1.2.3.0/24", true),
        ("::ffff:1.2.3.4/128", "1.2.3.4/32", false),
        ("::ffff:0.0.0.0/96", "0.0.0.0/0", false),
        ("::ffff:0:0/96", "0.0.0.0/0", false),
        // Translated and compatible prefixes stay IPv6.
        ("::ffff:0:1.2.3.0/120", "::ffff:0:102:300/120", false),
        ("::1.2.3.0/120", "::102:300/120", false),
    ])
    func validPrefix(text: String, canonical: String, hadHostBits: Bool) throws {
        let parsed = try #require(IPPrefix.parse(text))
        #expect(parsed.prefix.description == canonical)
        #expect(parsed.hadHostBits == hadHostBits)
        #expect(IPPrefix(text) == parsed.prefix)
        #expect(IPPrefix(canonical) == parsed.prefix)
    }

    @Test func mappedPrefixShorterThan96StaysIPv6() throws {
        let parsed = try #require(IPPrefix.parse("::ffff:1.2.3.4/95"))
        #expect(parsed.prefix.network.family == .v6)
        #expect(parsed.prefix.length == 95)
        #expect(parsed.hadHostBits)
        #expect(parsed.prefix.network == .v6(0xfffe_0000_0000))
    }

    @Test(arguments: [
        "10.0.0.0/+8", "10.0.0.0/-8", "10.0.0.0/08", "10.0.0.0/024", "10.0.0.0/00", "::/00", "::/0128",
        "10.0.0.0/33", "10.0.0.0/99", "10.0.0.0/1000", "::/129", "::/200", "::ffff:1.2.3.0/129",
        "10.0.0.0/", "/", "/24", "//24", "10.0.0.0", "::", "10.0.0.0/ 8", "10.0.0.0 /8", "10.0.0.0/8 ",
        " 10.0.0.0/8", "10.0.0.0/8/8", "10.0.0.0//8", "10.0.0.0/0x8", "10.0.0.0/8.0", "10.0.0.0/８",
        "10.0/8", "010.0.0.0/8", "10.0.0.0./8", "fe80::%eth0/64", "fe80::/64%eth0", "[::]/0", "[::/0]",
        "10.0.0.0/8\0", "10.0.0.0/\08", "::1:/64", "1:2:3:4:5:6:7::8/64", "1.2.3.4/32\n",
    ])
    func invalidPrefix(text: String) {
        #expect(IPPrefix.parse(text) == nil)
        #expect(IPPrefix(text) == nil)
    }

    @Test func everyLengthOfBothFamilies() throws {
        for length in 0...32 {
            let parsed = try #require(IPPrefix.parse("255.255.255.255/\(length)"))
            #expect(parsed.prefix.length == length)
            #expect(parsed.prefix.network == .v4(IPPrefix.mask32(length)))
            #expect(parsed.hadHostBits == (length < 32))
        }
        for length in 0...128 {
            let parsed = try #require(IPPrefix.parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/\(length)"))
            #expect(parsed.prefix.length == length)
            #expect(parsed.prefix.network == .v6(IPPrefix.mask128(length)))
            #expect(parsed.hadHostBits == (length < 128))
        }
    }

    @Test func containsAndLastAddress() {
        let p = prefix("192.0.2.0/24")
        #expect(p.contains(address("192.0.2.0")))
        #expect(p.contains(address("192.0.2.255")))
        #expect(!p.contains(address("192.0.3.0")))
        #expect(!p.contains(address("192.0.1.255")))
        #expect(p.lastAddress == address("192.0.2.255"))
        #expect(p.contains(address("::ffff:192.0.2.7")))  // a mapped address is the IPv4 address
        #expect(!p.contains(address("::192.0.2.7")))  // never across families

        let all4 = prefix("0.0.0.0/0")
        #expect(all4.contains(address("255.255.255.255")))
        #expect(!all4.contains(address("::")))
        #expect(all4.lastAddress == address("255.255.255.255"))

        let all6 = prefix("::/0")
        #expect(all6.contains(address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
        #expect(!all6.contains(address("0.0.0.0")))
        #expect(all6.lastAddress == .v6(.max))

        let host = prefix("2001:db8::1/128")
        #expect(host.contains(address("2001:db8::1")))
        #expect(!host.contains(address("2001:db8::2")))
        #expect(host.lastAddress == address("2001:db8::1"))
        #expect(prefix("10.0.0.1/32").lastAddress == address("10.0.0.1"))
    }

    @Test func initializerMasksAndClamps() {
        #expect(IPPrefix(network: address("10.1.2.3"), length: 8).description == "10.0.0.0/8")
        #expect(IPPrefix(network: address("10.1.2.3"), length: 40).description == "10.1.2.3/32")
        #expect(IPPrefix(network: address("10.1.2.3"), length: -1).description == "0.0.0.0/0")
        #expect(IPPrefix(network: address("2001:db8::1"), length: 200).description == "2001:db8::1/128")
        #expect(IPPrefix(network: address("2001:db8::1"), length: 16).description == "2001::/16")
    }

    @Test func masks() {
        #expect(IPPrefix.mask32(0) == 0)
        #expect(IPPrefix.mask32(1) == 0x8000_0000)
        #expect(IPPrefix.mask32(24) == 0xFFFF_FF00)
        #expect(IPPrefix.mask32(32) == 0xFFFF_FFFF)
        #expect(IPPrefix.mask128(0) == 0)
        #expect(IPPrefix.mask128(1) == UInt128(1) << 127)
        #expect(IPPrefix.mask128(64) == UInt128(UInt64.max) << 64)
        #expect(IPPrefix.mask128(128) == .max)
    }

    @Test func rawByteParserNeverReadsPastItsBuffer() {
        // The parser gets exactly the bytes of a longer buffer's prefix: it must not look beyond them.
        let text = Array("1.2.3.45".utf8)
        text.withUnsafeBytes { raw in
            #expect(AddressParser.parseAddress(UnsafeRawBufferPointer(rebasing: raw[..<7])) == address("1.2.3.4"))
            #expect(AddressParser.parseAddress(UnsafeRawBufferPointer(rebasing: raw[..<6])) == nil)
            #expect(AddressParser.parseAddress(UnsafeRawBufferPointer(rebasing: raw[..<0])) == nil)
        }
        let prefixText = Array("10.0.0.0/245".utf8)
        prefixText.withUnsafeBytes { raw in
            let parsed = AddressParser.parsePrefix(UnsafeRawBufferPointer(rebasing: raw[..<11]))
            #expect(parsed?.address == address("10.0.0.0") && parsed?.length == 24)
            #expect(AddressParser.parsePrefix(UnsafeRawBufferPointer(rebasing: raw[..<9])) == nil)
        }
    }
}
