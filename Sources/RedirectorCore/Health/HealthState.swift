/// The health of one pool member, as the prober last saw it.
public struct MemberHealth: Hashable, Sendable {
    /// Up, down, or never checked.
    public enum State: UInt8, Sendable {
        /// The member has no health check (or none has finished yet): decisions treat it as up.
        case unchecked = 0
        /// Passing its check.
        case up = 1
        /// Failed its check `fall` times in a row: decisions skip it.
        case down = 2

        /// `unchecked`, `up` or `down`.
        public var name: String {
            switch self {
            case .unchecked: return "unchecked"
            case .up: return "up"
            case .down: return "down"
            }
        }
    }

    /// Why the last probe failed.
    public enum Failure: UInt8, Sendable, CaseIterable {
        /// It did not (or there was no probe yet).
        case none = 0
        /// No answer within the timeout.
        case timeout = 1
        /// The connection could not be made (refused, reset, DNS).
        case connect = 2
        /// An answer with a status the check does not accept.
        case status = 3
        /// Anything else (TLS, a malformed answer).
        case other = 4

        /// The label in metrics and logs.
        public var name: String {
            switch self {
            case .none: return "none"
            case .timeout: return "timeout"
            case .connect: return "connect"
            case .status: return "status"
            case .other: return "other"
            }
        }
    }

    /// Current state.
    public var state: State
    /// Reason of the last failed probe, ``Failure/none`` after a success.
    public var failure: Failure
    /// Status of the last answer, 0 when there was none.
    public var status: UInt16
    /// Duration of the last probe, microseconds.
    public var latencyMicroseconds: UInt32
    /// When the state last changed, Unix milliseconds.
    public var since: Int64
    /// The last error in words, empty after a success (at most 200 bytes are kept).
    public var error: String

    /// Creates a record.
    public init(state: State, failure: Failure = .none, status: UInt16 = 0, latencyMicroseconds: UInt32 = 0, since: Int64,
                error: String = "") {
        self.state = state
        self.failure = failure
        self.status = status
        self.latencyMicroseconds = latencyMicroseconds
        self.since = since
        self.error = error
    }
}

/// Why a health state file was not used.
public struct HealthStateError: Error, CustomStringConvertible, Sendable {
    /// The kind of problem, for metrics and log fields.
    public enum Kind: String, Sendable {
        /// Not a health state file, truncated or failing its checksum.
        case corrupt
        /// Written in a format version this build does not read.
        case version
        /// Written for other pools (another member count or health fingerprint).
        case otherSnapshot
        /// Older than its stale-after: the prober is gone.
        case stale
        /// Dated in the future (clock skew between prober and reader).
        case future
    }

    /// The kind of problem.
    public let kind: Kind
    /// What is wrong, e.g. "checksum mismatch".
    public let description: String
}

/// A decoded health state: the per-member records and the bitmap decisions read.
///
/// The state file (`redirector probe` writes it, replacing it atomically; little endian):
///
///     offset size
///          0    8  magic "RDRHLTH\0"
///          8    4  format version (1)
///         12    4  member count n (``Policy/memberCount`` of the snapshot it is for)
///         16    8  health fingerprint of the snapshot's pools (``Snapshot/healthFingerprint``)
///         24    8  written at, Unix milliseconds
///         32    8  stale after, milliseconds: readers ignore the file once now > written + this
///         40 16×n  records: state u8, failure u8, last status u16, latency µs u32, since ms i64
///          …       n errors: length u16, UTF-8 bytes
///          …    8  XXH64 (seed 0) of every byte before it
///
/// The prober rewrites the file at least every ``heartbeat`` even when nothing changed, so a
/// file older than its stale-after (3 × the longest check interval, at least 10 s) means the
/// prober is gone: readers then decide as without health, never "all down".
public final class HealthState: @unchecked Sendable {
    /// File magic.
    public static let magic: [UInt8] = Array("RDRHLTH".utf8) + [0]
    /// Format version written and read.
    public static let version: UInt32 = 1
    /// The latest time a state file may carry, Unix milliseconds (2^52: about 140,000 years on).
    public static let latestTime: Int64 = 1 << 52
    /// Most bytes of an error kept per member.
    public static let maximumErrorLength = 200

    /// Per-member records, in slot order.
    public let records: [MemberHealth]
    /// When the prober wrote it, Unix milliseconds.
    public let writtenAt: Int64
    /// How long after `writtenAt` the state stays valid, milliseconds.
    public let staleAfter: Int64
    private let words: UnsafeMutablePointer<UInt64>
    private let wordCount: Int

    /// The bitmap decisions read (bit set = down). It points into this object: keep the state
    /// alive (hold it) while a decision uses the view.
    public var view: HealthView { HealthView(words: UnsafePointer(words), slotCount: records.count) }

    /// Number of members down.
    public var downCount: Int { records.reduce(0) { $0 + ($1.state == .down ? 1 : 0) } }

    /// A state with these records.
    public init(records: [MemberHealth], writtenAt: Int64, staleAfter: Int64) {
        self.records = records
        self.writtenAt = writtenAt
        self.staleAfter = staleAfter
        wordCount = max(1, (records.count + 63) / 64)
        words = .allocate(capacity: wordCount)
        words.initialize(repeating: 0, count: wordCount)
        for (slot, record) in records.enumerated() where record.state == .down {
            words[slot >> 6] |= 1 << UInt64(slot & 63)
        }
    }

    deinit {
        words.deallocate()
    }

    /// Whether the state is too old to trust at `now` (Unix milliseconds).
    public func isStale(now: Int64) -> Bool {
        now > writtenAt &+ staleAfter
    }

    /// The file bytes of this state for a snapshot with `fingerprint`.
    public func encode(fingerprint: UInt64) -> [UInt8] {
        var writer = ByteWriter()
        writer.write(bytes: HealthState.magic)
        writer.write(HealthState.version)
        writer.write(UInt32(records.count))
        writer.write(fingerprint)
        writer.write(writtenAt)
        writer.write(staleAfter)
        for record in records {
            writer.write(record.state.rawValue)
            writer.write(record.failure.rawValue)
            writer.write(record.status)
            writer.write(record.latencyMicroseconds)
            writer.write(record.since)
        }
        for record in records {
            let error = Array(record.error.utf8.prefix(HealthState.maximumErrorLength))
            writer.write(UInt16(error.count))
            writer.write(bytes: error)
        }
        let checksum = writer.bytes.withUnsafeBytes { XXHash64.hash($0) }
        writer.write(checksum)
        return writer.bytes
    }

    /// Reads and validates a state file's bytes for the snapshot with `fingerprint` and
    /// `memberCount` members, at `now` (Unix milliseconds). Throws for a truncated, corrupt,
    /// future-version, other-snapshot, stale or future-dated file.
    public static func decode(_ bytes: UnsafeRawBufferPointer, fingerprint: UInt64, memberCount: Int,
                              now: Int64) throws -> HealthState {
        func fail(_ message: String, _ kind: HealthStateError.Kind = .corrupt) -> HealthStateError {
            HealthStateError(kind: kind, description: message)
        }
        guard bytes.count >= 48 else { throw fail("truncated: \(bytes.count) bytes, smaller than the 48-byte minimum") }
        guard bytes.prefix(8).elementsEqual(magic) else { throw fail("not a health state file (bad magic)") }
        var reader = ByteReader(bytes, context: "health state")
        do {
            _ = try reader.read(UInt64.self)
            let version: UInt32 = try reader.read()
            guard version == HealthState.version else {
                throw fail("format version \(version), this build reads version \(HealthState.version)", .version)
            }
            let stored = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
            let actual = XXHash64.hash(UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - 8)]))
            guard stored == actual else { throw fail("checksum mismatch: the file is corrupt or was cut short") }
            let count = Int(try reader.read(UInt32.self))
            let fileFingerprint: UInt64 = try reader.read()
            guard count == memberCount, fileFingerprint == fingerprint else {
                throw fail("written for other pools (\(count) members, fingerprint \(String(fileFingerprint, radix: 16)); "
                    + "this snapshot has \(memberCount), \(String(fingerprint, radix: 16)))", .otherSnapshot)
            }
            let writtenAt: Int64 = try reader.read()
            let staleAfter: Int64 = try reader.read()
            // Times outside 1970 … +140,000 years are no clock reading; checked first, the age
            // arithmetic below cannot overflow (a caller's `now` is clamped to the same range).
            let now = min(max(now, 0), HealthState.latestTime)
            guard (0...HealthState.latestTime).contains(writtenAt) else { throw fail("written at \(writtenAt) ms, not a possible time") }
            guard (1...HealthState.latestTime).contains(staleAfter) else { throw fail("stale-after is \(staleAfter) ms") }
            guard writtenAt <= now &+ 60_000 else { throw fail("written \((writtenAt - now) / 1000) s in the future (clock skew?)", .future) }
            guard now <= writtenAt &+ staleAfter else {
                throw fail("stale: written \((now - writtenAt) / 1000) s ago, valid for \(staleAfter / 1000) s (is the prober running?)", .stale)
            }
            guard count <= (bytes.count - 48) / 18 else { throw fail("claims \(count) members, more than its size holds") }
            var records: [MemberHealth] = []
            records.reserveCapacity(count)
            for slot in 0..<count {
                let stateByte: UInt8 = try reader.read()
                let failureByte: UInt8 = try reader.read()
                guard let state = MemberHealth.State(rawValue: stateByte), let failure = MemberHealth.Failure(rawValue: failureByte) else {
                    throw fail("member \(slot) has state \(stateByte), failure \(failureByte)")
                }
                records.append(MemberHealth(state: state, failure: failure, status: try reader.read(),
                                            latencyMicroseconds: try reader.read(), since: try reader.read()))
            }
            for slot in 0..<count {
                let length = Int(try reader.read(UInt16.self))
                guard length <= maximumErrorLength else { throw fail("member \(slot) has a \(length)-byte error") }
                records[slot].error = String(decoding: try reader.read(bytes: length), as: UTF8.self)
            }
            guard reader.offset == bytes.count - 8 else { throw fail("has \(bytes.count - 8 - reader.offset) bytes after its records") }
            return HealthState(records: records, writtenAt: writtenAt, staleAfter: staleAfter)
        } catch let error as HealthStateError {
            throw error
        } catch {
            throw fail("truncated: \(error)")  // a read past the end
        }
    }
}

extension Snapshot {
    /// A hash of every member's URL and health check, in slot order: a health state is valid for
    /// any snapshot with the same pools (a data refresh keeps it), and rejected by any other.
    public var healthFingerprint: UInt64 {
        var text: [UInt8] = []
        for member in policy.members {
            text.append(contentsOf: strings.bytes(member.url))
            text.append(0)
            if let check = member.health { text.append(contentsOf: strings.bytes(check.url)) }
            text.append(0)
        }
        return text.withUnsafeBytes { XXHash64.hash($0, seed: UInt64(policy.memberCount)) }
    }
}
