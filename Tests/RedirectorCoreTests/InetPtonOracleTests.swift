import Glibc
import RedirectorCore
import Testing

/// Compares the parser with glibc's `inet_pton` on thousands of generated and mutated strings.
///
/// Intended differences: none for strings without NUL bytes. (A C string ends at its first NUL, so
/// `inet_pton` cannot even see `"1.2.3.4\0junk"`; our parser gets the whole buffer and rejects the NUL.
/// The corpus therefore contains no NUL; ``AddressParserTests`` checks NUL handling directly.)
/// The only transformation on our side is the documented one: an IPv4-mapped IPv6 address is `.v4`.
@Suite struct InetPtonOracleTests {
    /// glibc's answer for `text` in `family`, as network-order bytes.
    static func pton(_ family: Int32, _ text: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let result = text.withCString { inet_pton(family, $0, &buffer) }
        guard result == 1 else { return nil }
        return Array(buffer[..<(family == AF_INET ? 4 : 16)])
    }

    /// What the parser must return according to glibc.
    static func expectedAddress(_ text: String) -> IPAddress? {
        if let bytes = pton(AF_INET, text) {
            return .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        }
        if let bytes = pton(AF_INET6, text) {
            let value = bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
            return value >> 32 == 0xffff ? .v4(UInt32(truncatingIfNeeded: value)) : .v6(value)
        }
        return nil
    }

    /// What the prefix parser must return: glibc for the address, and a strict decimal length
    /// (no sign, no leading zero, at most the family's width); mapped prefixes ≥ /96 become IPv4.
    static func expectedPrefix(_ text: String) -> (address: IPAddress, length: Int)? {
        guard let slash = text.firstIndex(of: "/") else { return nil }
        let addressText = String(text[..<slash])
        let lengthText = text[text.index(after: slash)...]
        guard !lengthText.isEmpty, lengthText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              lengthText == "0" || !lengthText.hasPrefix("0"), lengthText.count <= 3, let length = Int(lengthText)
        else { return nil }
        if let bytes = pton(AF_INET, addressText) {
            guard length <= 32 else { return nil }
            return (.v4(bytes.reduce(0) { $0 << 8 | UInt32($1) }), length)
        }
        if let bytes = pton(AF_INET6, addressText) {
            guard length <= 128 else { return nil }
            let value = bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
            if value >> 32 == 0xffff && length >= 96 { return (.v4(UInt32(truncatingIfNeeded: value)), length - 96) }
            return (.v6(value), length)
        }
        return nil
    }

    /// A valid dotted quad, biased towards 0, 255 and one-digit octets.
    static func randomIPv4(_ g: inout SeededGenerator) -> String {
        (0..<4).map { _ -> String in
            switch g.next() % 6 {
            case 0: return "0"
            case 1: return "255"
            case 2: return String(g.next() % 10)
            default: return String(g.next() % 256)
            }
        }.joined(separator: ".")
    }

    /// A valid IPv6 text: random groups (often zero), random case and zero padding, optional
    /// compression of one zero run, optional dotted-quad tail.
    static func randomIPv6(_ g: inout SeededGenerator) -> String {
        var groups = (0..<8).map { _ -> UInt16 in
            switch g.next() % 4 {
            case 0, 1: return 0
            case 2: return UInt16(truncatingIfNeeded: g.next() % 16)
            default: return UInt16(truncatingIfNeeded: g.next())
            }
        }
        if g.next() % 5 == 0 {  // mapped
            groups[0...4] = [0, 0, 0, 0, 0]
            groups[5] = 0xffff
        }
        let tail = g.next() % 3 == 0
        func hex(_ group: UInt16) -> String {
            var text = String(group, radix: 16, uppercase: g.next() % 4 == 0)
            let padding = Int(g.next() % 4)
            if text.count + padding <= 4 { text = String(repeating: "0", count: padding) + text }
            return text
        }
        var texts = groups.map(hex)
        if tail {
            texts.removeLast(2)
            let high = groups[6], low = groups[7]
            texts.append("\(high >> 8).\(high & 0xff).\(low >> 8).\(low & 0xff)")
        }
        // Zero runs among the hex groups (the tail is never compressed).
        let hexCount = tail ? 6 : 8
        var runs: [Range<Int>] = []
        var index = 0
        while index < hexCount {
            if groups[index] == 0 {
                var end = index
                while end < hexCount && groups[end] == 0 { end += 1 }
                runs.append(index..<end)
                index = end
            } else {
                index += 1
            }
        }
        if !runs.isEmpty && g.next() % 4 != 0 {
            let run = runs[Int(g.next() % UInt64(runs.count))]
            // Compress all or part of the run.
            let start = run.lowerBound + Int(g.next() % UInt64(run.count))
            let end = start + 1 + Int(g.next() % UInt64(run.upperBound - start))
            let head = texts[..<start].joined(separator: ":")
            let rest = texts[end...].joined(separator: ":")
            return head + "::" + rest
        }
        return texts.joined(separator: ":")
    }

    static let alphabet: [Character] = Array("0123456789abcdefABCDEFxgG:.%/[] +-\t\n1::0.")

    /// One to three random edits: insert, delete, replace, duplicate, swap, truncate, splice.
    static func mutate(_ text: String, _ g: inout SeededGenerator) -> String {
        var characters = Array(text)
        for _ in 0..<(1 + Int(g.next() % 3)) {
            let position = characters.isEmpty ? 0 : Int(g.next() % UInt64(characters.count))
            let character = alphabet[Int(g.next() % UInt64(alphabet.count))]
            switch g.next() % 7 {
            case 0: characters.insert(character, at: position)
            case 1: if !characters.isEmpty { characters.remove(at: position) }
            case 2: if !characters.isEmpty { characters[position] = character }
            case 3: if !characters.isEmpty { characters.insert(characters[position], at: position) }
            case 4: if position + 1 < characters.count { characters.swapAt(position, position + 1) }
            case 5: characters = Array(characters[..<position])
            default:
                let other = Array(g.next() % 2 == 0 ? randomIPv4(&g) : randomIPv6(&g))
                let cut = other.isEmpty ? 0 : Int(g.next() % UInt64(other.count))
                characters = Array(characters[..<position]) + other[cut...]
            }
        }
        return String(characters)
    }

    /// The corpus: valid forms, their mutations, and short random strings over the grammar's characters.
    static func corpus(seed: UInt64) -> [String] {
        var g = SeededGenerator(seed: seed)
        var texts: [String] = []
        for _ in 0..<3000 {
            let v4 = randomIPv4(&g)
            let v6 = randomIPv6(&g)
            texts += [v4, v6, mutate(v4, &g), mutate(v6, &g), mutate(v6, &g)]
        }
        let grammar = Array("0123456789aF:.")
        for _ in 0..<6000 {
            let count = Int(g.next() % 18)
            texts.append(String((0..<count).map { _ in grammar[Int(g.next() % UInt64(grammar.count))] }))
        }
        return texts
    }

    @Test func addressesAgreeWithInetPton() {
        var accepted4 = 0, accepted6 = 0, mapped = 0, rejected = 0
        for text in InetPtonOracleTests.corpus(seed: 42) {
            let expected = InetPtonOracleTests.expectedAddress(text)
            let actual = IPAddress(text)
            #expect(actual == expected, "'\(text)': ours \(actual.map { "\($0)" } ?? "nil"), inet_pton \(expected.map { "\($0)" } ?? "nil")")
            switch actual {
            case .v4?: if text.contains(":") { mapped += 1 } else { accepted4 += 1 }
            case .v6?: accepted6 += 1
            case nil: rejected += 1
            }
        }
        // The corpus exercises every outcome in quantity (else the comparison would prove little).
        #expect(accepted4 > 3000)
        #expect(accepted6 > 2500)
        #expect(mapped > 400)
        #expect(rejected > 8000)
    }

    @Test func prefixesAgreeWithInetPtonAndStrictLengths() {
        var g = SeededGenerator(seed: 7)
        let lengths = ["0", "1", "8", "24", "31", "32", "33", "48", "64", "95", "96", "97", "120", "127", "128", "129",
                       "024", "08", "00", "+8", "-1", "", "1000", " 8", "8 ", "0x8", "/8", "1e1"]
        var accepted = 0, rejected = 0
        for text in InetPtonOracleTests.corpus(seed: 43).prefix(12000) {
            var candidate = text + "/" + lengths[Int(g.next() % UInt64(lengths.count))]
            if g.next() % 8 == 0 { candidate = InetPtonOracleTests.mutate(candidate, &g) }
            let expected = InetPtonOracleTests.expectedPrefix(candidate)
            var copy = candidate
            let actual = copy.withUTF8 { AddressParser.parsePrefix(UnsafeRawBufferPointer($0)) }
            #expect(actual?.address == expected?.address && actual?.length == expected?.length,
                    "'\(candidate)': ours \(actual.map { "\($0.address)/\($0.length)" } ?? "nil"), reference \(expected.map { "\($0.address)/\($0.length)" } ?? "nil")")
            // IPPrefix.parse agrees, with host bits masked and reported.
            let parsed = IPPrefix.parse(candidate)
            #expect((parsed == nil) == (expected == nil))
            if let parsed, let expected {
                let masked = IPPrefix(network: expected.address, length: expected.length)
                #expect(parsed.prefix == masked)
                #expect(parsed.hadHostBits == (masked.network != expected.address))
                accepted += 1
            } else {
                rejected += 1
            }
        }
        #expect(accepted > 1500)
        #expect(rejected > 2500)
    }
}
