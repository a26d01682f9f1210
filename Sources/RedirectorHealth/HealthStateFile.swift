import Glibc
import RedirectorCore

/// Why a health state file could not be used, in the few words metrics label it with.
public enum HealthStateFileProblem: String, Sendable, CaseIterable, CustomStringConvertible {
    /// There is no file.
    case missing
    /// The file exists but cannot be read.
    case unreadable
    /// Not a health state file, truncated or failing its checksum.
    case corrupt
    /// Written in a format version this build does not read.
    case version
    /// Written for a snapshot with other pools.
    case otherSnapshot = "other_snapshot"
    /// Older than its stale-after: the prober is gone.
    case stale
    /// Dated in the future (clock skew between prober and reader).
    case future

    /// The metric label.
    public var description: String { rawValue }

    /// The problem a ``HealthStateError`` names.
    public init(_ error: HealthStateError) {
        switch error.kind {
        case .corrupt: self = .corrupt
        case .version: self = .version
        case .otherSnapshot: self = .otherSnapshot
        case .stale: self = .stale
        case .future: self = .future
        }
    }
}

/// A health state file that could not be used, and why.
public struct HealthStateFileError: Error, CustomStringConvertible, Sendable {
    /// The kind of problem.
    public var problem: HealthStateFileProblem
    /// What is wrong, in words.
    public var message: String

    /// Creates an error.
    public init(_ problem: HealthStateFileProblem, _ message: String) {
        self.problem = problem
        self.message = message
    }

    /// `problem: message`.
    public var description: String { "\(problem): \(message)" }
}

/// A health state file that could not be written.
public struct HealthStateWriteError: Error, CustomStringConvertible, Sendable, Hashable {
    /// What failed, in words.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Reading and writing health state files (the format is ``HealthState``'s).
public enum HealthStateFile {
    /// Largest file read: far above any real pool list, it stops a wrong path from being read whole.
    public static let maximumBytes = 64 * 1024 * 1024

    /// Writes `bytes` to `path` atomically: into `path.tmp-<pid>`, then `rename()` over `path`.
    /// Readers see the old file or the new one, never a part. (No fsync: after a crash the prober
    /// writes it again within a heartbeat.)
    public static func write(_ bytes: [UInt8], to path: String) throws(HealthStateWriteError) {
        let temporary = "\(path).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw HealthStateWriteError("cannot create \(temporary): \(errorText())") }
        var written = 0
        let failure: String? = bytes.withUnsafeBytes { buffer -> String? in
            while written < buffer.count {
                let result = Glibc.write(descriptor, buffer.baseAddress.map { $0 + written }, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return errorText()
                }
                written += result
            }
            return nil
        }
        close(descriptor)
        if let failure {
            unlink(temporary)
            throw HealthStateWriteError("cannot write \(temporary): \(failure)")
        }
        guard rename(temporary, path) == 0 else {
            let message = errorText()
            unlink(temporary)
            throw HealthStateWriteError("cannot rename \(temporary) to \(path): \(message)")
        }
    }

    /// Writes `state` for the pools with `fingerprint` to `path` (see ``write(_:to:)``).
    public static func write(_ state: HealthState, fingerprint: UInt64, to path: String) throws(HealthStateWriteError) {
        try write(state.encode(fingerprint: fingerprint), to: path)
    }

    /// Reads and validates the state file at `path` for a snapshot's pools at `now` (Unix milliseconds).
    public static func read(path: String, fingerprint: UInt64, memberCount: Int, now: Int64) throws(HealthStateFileError) -> HealthState {
        let bytes = try readBytes(path: path)
        do {
            return try bytes.withUnsafeBytes { try HealthState.decode($0, fingerprint: fingerprint, memberCount: memberCount, now: now) }
        } catch let error as HealthStateError {
            throw HealthStateFileError(HealthStateFileProblem(error), error.description)
        } catch {
            throw HealthStateFileError(.corrupt, "\(error)")
        }
    }

    /// The whole file at `path`.
    static func readBytes(path: String) throws(HealthStateFileError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            let code = errno
            let message = errorText()
            throw HealthStateFileError(code == ENOENT ? .missing : .unreadable, "cannot open \(path): \(message)")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw HealthStateFileError(.unreadable, "cannot read \(path): \(errorText())")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            guard bytes.count <= maximumBytes else {
                throw HealthStateFileError(.corrupt, "\(path) is larger than \(maximumBytes) bytes")
            }
        }
        return bytes
    }

    private static func errorText() -> String {
        String(cString: strerror(errno))
    }
}

/// The current time, Unix milliseconds (the clock of health state files).
public func unixMilliseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) &* 1000 &+ Int64(spec.tv_nsec) / 1_000_000
}
