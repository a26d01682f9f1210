import Foundation

/// Small file helpers for the commands.
enum FileOutput {
    /// Writes text to a file descriptor.
    static func write(_ text: String, to descriptor: Int32) {
        FileHandle(fileDescriptor: descriptor).write(Data(text.utf8))
    }

    /// Writes bytes to `path` atomically: a temporary file in the same directory, then rename,
    /// so a process loading the snapshot never sees a partial file.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        try Data(bytes).write(to: temporary)
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw CommandFailure(description: "\(path): cannot rename into place: \(reason)")
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
