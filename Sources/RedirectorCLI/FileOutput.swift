import Foundation

/// Small file helpers for the commands.
enum FileOutput {
    /// Writes text to a file descriptor.
    static func write(_ text: String, to descriptor: Int32) {
        FileHandle(fileDescriptor: descriptor).write(Data(text.utf8))
    }

    /// Writes bytes to `path` atomically and durably: a temporary file in the same directory,
    /// fsynced, renamed into place, then the directory fsynced, so a process loading the
    /// snapshot never sees a partial file and a crash leaves the old file or the new one.
    ///
    /// With `keep`, the file being replaced is kept as `path.1` (older ones shifted up to
    /// `path.<keep>`, any beyond removed); the installed file stays in place until the rename.
    static func writeAtomically(_ bytes: [UInt8], to path: String, keep: Int? = nil) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp").path
        func fail(_ what: String) -> CommandFailure {
            CommandFailure(description: "\(path): \(what): \(String(cString: strerror(errno)))")
        }
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw fail("cannot create \(temporary)") }
        let written = bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let count = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                guard count > 0 else { return false }
                offset += count
            }
            return true
        }
        guard written, fsync(descriptor) == 0 else {
            let error = fail("cannot write \(temporary)")
            close(descriptor)
            unlink(temporary)
            throw error
        }
        close(descriptor)
        do {
            if let keep { try rotate(path, keep: keep) }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let error = fail("cannot rename into place")
            unlink(temporary)
            throw error
        }
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Keeps `path` as `path.1`, shifting `path.1` … `path.<keep-1>` up by one, and removes
    /// numbered copies beyond `keep` (all of them for 0).
    private static func rotate(_ path: String, keep: Int) throws {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)) ?? []
        for other in names where other.hasPrefix(name + ".") {
            if let number = Int(other.dropFirst(name.count + 1)), number > keep { unlink("\(path).\(number)") }
        }
        guard keep > 0, FileManager.default.fileExists(atPath: path) else { return }
        for number in stride(from: keep - 1, through: 1, by: -1) where FileManager.default.fileExists(atPath: "\(path).\(number)") {
            guard rename("\(path).\(number)", "\(path).\(number + 1)") == 0 else {
                throw CommandFailure(description: "\(path).\(number): cannot rotate: \(String(cString: strerror(errno)))")
            }
        }
        // A hard link, not a rename: `path` never disappears, even for a moment.
        unlink("\(path).1")
        guard link(path, "\(path).1") == 0 else {
            throw CommandFailure(description: "\(path): cannot keep as \(path).1: \(String(cString: strerror(errno)))")
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
