import Glibc

/// The harness's line protocol: space-separated `key=hex` tokens, so any byte survives a line.
enum LineProtocol {
    /// Parses one request line; nil when a token is not `key=hex` (`header=hex:hex`) or names an unknown key.
    static func parse(_ line: String) -> ConformanceDriver.Request? {
        var request = ConformanceDriver.Request()
        var envoy: String?
        var realIP: String?
        for token in line.split(separator: " ") {
            guard let equals = token.firstIndex(of: "=") else { return nil }
            let key = token[..<equals]
            let value = token[token.index(after: equals)...]
            if key == "id" {
                request.id = String(value)
                continue
            }
            if key == "header" {
                // A request header for the routes' conditions: `header=<hex name>:<hex value>`.
                guard let colon = value.firstIndex(of: ":"), let name = unhex(value[..<colon]),
                      let text = unhex(value[value.index(after: colon)...]) else { return nil }
                request.headers.append((name, text))
                continue
            }
            guard let bytes = unhex(value) else { return nil }
            switch key {
            case "peer": request.peer = bytes
            case "client": request.client = bytes
            case "method": request.method = bytes
            case "target": request.target = bytes
            case "xff": request.forwardedFor.append(String(decoding: bytes, as: UTF8.self))
            case "realip": realIP = String(decoding: bytes, as: UTF8.self)
            case "envoy": envoy = String(decoding: bytes, as: UTF8.self)
            case "missing":
                let slots = String(decoding: bytes, as: UTF8.self).split(separator: ",").map { UInt32($0) }
                guard !slots.contains(nil) else { return nil }
                request.missing = slots.compactMap { $0 }
            case "exhausted":
                guard bytes == Array("0".utf8) || bytes == Array("1".utf8) else { return nil }
                request.exhausted = bytes == Array("1".utf8)
            default: return nil
            }
        }
        request.realIP = envoy ?? realIP
        return request
    }

    /// Writes one unbuffered line to standard output (the harness waits for it).
    static func emit(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Lower-case hex digits, indexed by nibble.
    static let digits = Array("0123456789abcdef".utf8)

    /// The UTF-8 bytes of `text`, hex-encoded.
    static func hex(_ text: String) -> String { hex(Array(text.utf8)) }

    /// `bytes`, hex-encoded (two lower-case digits a byte).
    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of a hex string (either case); nil for an odd length or a non-hex digit.
    static func unhex(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
