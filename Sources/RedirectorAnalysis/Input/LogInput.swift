import CZlib
import Glibc

/// Why an input could not be read.
public struct LogInputError: Error, CustomStringConvertible, Sendable {
    /// "`<name>`: `<reason>`".
    public let description: String
}

/// One log input — a file or standard input, plain or gzip (detected from the data, so `.gz` names
/// are not required; concatenated gzip members are read in turn) — delivered line by line from a
/// fixed buffer: memory stays bounded whatever the input's size.
public final class LogInput {
    /// The file name, or `-` for standard input.
    public let name: String
    private var file: gzFile?
    private var pump: ChunkPump?
    private var pumpThread = pthread_t()
    private var chunk: (index: Int, bytes: UnsafeRawBufferPointer, offset: Int)?
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var endOfInput = false
    private var discarding = false
    /// Lines returned so far (the current line's number, 1-based).
    public private(set) var lineNumber = 0
    /// Lines dropped because they did not fit the buffer.
    public private(set) var oversizedLines = 0
    /// A problem that ended the input early without losing what was read (a truncated gzip stream).
    public private(set) var warning: String?
    /// Uncompressed bytes read so far.
    public private(set) var bytesRead: Int64 = 0

    /// Opens `path` (`-` for standard input). `bufferSize` bounds the longest line. With
    /// `background` (the default), a second thread inflates gzip input ahead while lines are parsed.
    public init(path: String, bufferSize: Int = 4 << 20, background: Bool = true) throws {
        name = path
        let handle: gzFile?
        if path == "-" {
            let descriptor = dup(0)
            guard descriptor >= 0 else { throw LogInputError(description: "-: cannot read standard input") }
            handle = gzdopen(descriptor, "rb")
        } else {
            var status = stat()
            guard stat(path, &status) == 0 else {
                throw LogInputError(description: "\(path): \(String(cString: strerror(errno)))")
            }
            guard status.st_mode & S_IFMT != S_IFDIR else { throw LogInputError(description: "\(path): is a directory") }
            handle = gzopen(path, "rb")
        }
        guard let handle else { throw LogInputError(description: "\(path): cannot open") }
        gzbuffer(handle, 1 << 20)
        file = handle
        buffer = .allocate(byteCount: max(bufferSize, 4096), alignment: 64)
        // Plain input is read directly (a copy through a second thread costs more than it saves).
        if background && gzdirect(handle) == 0 {
            let pump = ChunkPump(file: handle, name: path)
            if pump.start(&pumpThread) { self.pump = pump }
        }
    }

    deinit {
        if let pump {
            pump.stop()
            pthread_join(pumpThread, nil)
        }
        if let file { gzclose(file) }
        buffer.deallocate()
    }

    /// The next line without its `\n` (and `\r`), or nil at the end. The bytes stay valid until the
    /// next call. A line longer than the buffer is skipped and counted in ``oversizedLines``.
    @inline(__always)
    public func nextLine() throws -> UnsafeRawBufferPointer? {
        while true {
            if start < end, let base = buffer.baseAddress {
                if let newline = memchr(base + start, 0x0A, end &- start) {
                    let stop = base.distance(to: newline)
                    let lineStart = start
                    start = stop &+ 1
                    if discarding {
                        discarding = false
                        continue
                    }
                    lineNumber &+= 1
                    var lineEnd = stop
                    if lineEnd > lineStart && buffer[lineEnd &- 1] == 0x0D { lineEnd &-= 1 }
                    return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[lineStart..<lineEnd])
                }
            }
            if endOfInput {
                guard start < end else { return nil }
                let lineStart = start
                start = end
                if discarding {
                    discarding = false
                    return nil
                }
                lineNumber &+= 1
                var lineEnd = end
                if buffer[lineEnd &- 1] == 0x0D { lineEnd &-= 1 }
                return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[lineStart..<lineEnd])
            }
            try refill()
        }
    }

    /// Moves the partial line to the front and reads more; drops a line that fills the whole buffer.
    private func refill() throws {
        guard let base = buffer.baseAddress else { return }
        if start > 0 {
            if end > start { memmove(base, base + start, end &- start) }
            end &-= start
            start = 0
        }
        if end == buffer.count {
            // No newline in a full buffer: drop what we have and skip to the next newline.
            if !discarding {
                discarding = true
                oversizedLines &+= 1
                lineNumber &+= 1
            }
            end = 0
        }
        if let pump {
            try refill(from: pump, into: base)
            return
        }
        guard let file else {
            endOfInput = true
            return
        }
        let count = gzread(file, base + end, UInt32(truncatingIfNeeded: min(buffer.count &- end, Int(Int32.max))))
        if count < 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
            throw LogInputError(description: "\(name): \(message)")
        }
        if count == 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? ""
            if code != Z_OK && code != Z_STREAM_END {
                warning = "\(name): \(message.isEmpty ? "read error" : message) (truncated gzip?); analyzed what could be read"
            }
            endOfInput = true
            gzclose(file)
            self.file = nil
            return
        }
        end &+= Int(count)
        bytesRead &+= Int64(count)
    }

    /// Copies from the background reader's chunks into the free end of the buffer.
    private func refill(from pump: ChunkPump, into base: UnsafeMutableRawPointer) throws {
        if chunk == nil {
            guard let next = pump.take() else {
                let outcome = pump.outcome
                if let failure = outcome.failure { throw LogInputError(description: failure) }
                warning = outcome.truncation
                endOfInput = true
                return
            }
            chunk = (next.index, next.bytes, 0)
        }
        guard let current = chunk, let source = current.bytes.baseAddress else { return }
        let count = min(current.bytes.count &- current.offset, buffer.count &- end)
        (base + end).copyMemory(from: source + current.offset, byteCount: count)
        end &+= count
        bytesRead &+= Int64(count)
        if current.offset &+ count == current.bytes.count {
            pump.recycle(current.index)
            chunk = nil
        } else {
            chunk = (current.index, current.bytes, current.offset &+ count)
        }
    }
}
