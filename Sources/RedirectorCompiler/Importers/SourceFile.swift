import CZlib
import Foundation

/// Reads source files, decompressing gzip transparently (zlib's `gzread` passes plain files through).
enum SourceFile {
    /// The file's bytes (decompressed); more than `limit` of them is an error, so a gzip bomb
    /// fails after `limit` bytes instead of filling memory. Errors name the file `name` (default `path`).
    static func read(_ path: String, limit: Int? = nil, name: String? = nil) throws -> [UInt8] {
        let origin = name ?? path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImportError(origin: origin, message: "no such file")
        }
        guard !isDirectory.boolValue else { throw ImportError(origin: origin, message: "is a directory") }
        guard let file = gzopen(path, "rb") else { throw ImportError(origin: origin, message: "cannot open") }
        defer { gzclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if count < 0 {
                var code: Int32 = 0
                let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
                throw ImportError(origin: origin, message: "cannot read: \(message)")
            }
            if count == 0 { break }
            if let limit, bytes.count + Int(count) > limit {
                throw ImportError(origin: origin, message: "larger than \(limit) bytes (decompressed)")
            }
            bytes.append(contentsOf: chunk[0..<Int(count)])
        }
        return bytes
    }
}

/// Splits bytes into lines (LF or CRLF), yielding 1-based line numbers.
/// Works on bytes: Swift's `Character` treats CRLF as one grapheme, so splitting text on "\n" would not.
func forEachLine(_ bytes: [UInt8], _ body: (Int, Substring) throws -> Void) rethrows {
    try forEachLineRange(bytes) { number, range in
        try body(number, Substring(String(decoding: bytes[range], as: UTF8.self)))
    }
}

/// The byte ranges of the lines of `bytes` (without LF or CRLF), with 1-based line numbers: for
/// importers of large dumps, which parse bytes without making a string of every line.
func forEachLineRange<Bytes: RandomAccessCollection<UInt8>>(
    _ bytes: Bytes, _ body: (Int, Range<Int>) throws -> Void
) rethrows where Bytes.Index == Int {
    var number = 0
    var start = bytes.startIndex
    while start <= bytes.endIndex {
        var end = start
        while end < bytes.endIndex && bytes[end] != 0x0A { end += 1 }
        if end == bytes.endIndex && start == end && number > 0 { break }
        number += 1
        var stop = end
        if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
        try body(number, start..<stop)
        start = end + 1
    }
}
