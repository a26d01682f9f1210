import CZlib
import Foundation

/// Reads source files, decompressing gzip transparently (zlib's `gzread` passes plain files through).
enum SourceFile {
    /// The file's bytes.
    static func read(_ path: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ImportError(origin: path, message: "no such file")
        }
        guard !isDirectory.boolValue else { throw ImportError(origin: path, message: "is a directory") }
        guard let file = gzopen(path, "rb") else { throw ImportError(origin: path, message: "cannot open") }
        defer { gzclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { gzread(file, $0.baseAddress, UInt32($0.count)) }
            if count < 0 {
                var code: Int32 = 0
                let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
                throw ImportError(origin: path, message: "cannot read: \(message)")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<Int(count)])
        }
        return bytes
    }
}
