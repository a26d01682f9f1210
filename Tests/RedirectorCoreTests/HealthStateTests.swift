import RedirectorCore
import Testing

/// The health state file: round trip, and every way a file can be unusable, each with its reason.
@Suite struct HealthStateTests {
    static let fingerprint: UInt64 = 0x1234_5678_9abc_def0
    static let now: Int64 = 1_800_000_000_000

    static func sample(writtenAt: Int64 = now - 1000) -> HealthState {
        HealthState(records: [
            MemberHealth(state: .up, status: 200, latencyMicroseconds: 1500, since: now - 60_000),
            MemberHealth(state: .down, failure: .timeout, latencyMicroseconds: 2_000_000, since: now - 5000, error: "timed out after 2 s"),
            MemberHealth(state: .unchecked, since: now - 60_000),
        ], writtenAt: writtenAt, staleAfter: 30_000)
    }

    static func decode(_ bytes: [UInt8], memberCount: Int = 3, fingerprint: UInt64 = fingerprint) -> Result<HealthState, any Error> {
        Result {
            try bytes.withUnsafeBytes {
                try HealthState.decode($0, fingerprint: fingerprint, memberCount: memberCount, now: now)
            }
        }
    }

    static func reason(_ bytes: [UInt8], memberCount: Int = 3, fingerprint: UInt64 = fingerprint) -> String {
        switch decode(bytes, memberCount: memberCount, fingerprint: fingerprint) {
        case .success: return "accepted"
        case .failure(let error): return "\(error)"
        }
    }

    @Test func roundTripKeepsEveryRecordAndTheBitmap() throws {
        let bytes = HealthStateTests.sample().encode(fingerprint: HealthStateTests.fingerprint)
        let state = try HealthStateTests.decode(bytes).get()
        #expect(state.records == HealthStateTests.sample().records)
        #expect(state.downCount == 1)
        #expect(!state.view.isDown(0) && state.view.isDown(1) && !state.view.isDown(2))
        #expect(!state.view.isDown(3) && !state.view.isDown(.max))  // beyond the members: up
        #expect(!HealthView.allUp.isDown(1))
    }

    @Test func unusableFilesAreRejectedWithTheirReason() {
        let good = HealthStateTests.sample().encode(fingerprint: HealthStateTests.fingerprint)
        #expect(HealthStateTests.reason(Array(good.prefix(20))) == "truncated: 20 bytes, smaller than the 48-byte minimum")
        #expect(HealthStateTests.reason(Array(good.dropLast(3))) == "checksum mismatch: the file is corrupt or was cut short")
        for offset in stride(from: 12, to: good.count, by: 7) {
            var flipped = good
            flipped[offset] ^= 0x10
            #expect(HealthStateTests.reason(flipped) == "checksum mismatch: the file is corrupt or was cut short", "bit flip at \(offset)")
        }
        var magic = good
        magic[0] = UInt8(ascii: "X")
        #expect(HealthStateTests.reason(magic) == "not a health state file (bad magic)")
        var future = good
        future[8] = 2
        #expect(HealthStateTests.reason(future) == "format version 2, this build reads version 1")
        #expect(HealthStateTests.reason(good, memberCount: 4).hasPrefix("written for other pools (3 members"))
        #expect(HealthStateTests.reason(good, fingerprint: 1).hasPrefix("written for other pools"))
        let stale = HealthStateTests.sample(writtenAt: HealthStateTests.now - 31_000).encode(fingerprint: HealthStateTests.fingerprint)
        #expect(HealthStateTests.reason(stale) == "stale: written 31 s ago, valid for 30 s (is the prober running?)")
        let ahead = HealthStateTests.sample(writtenAt: HealthStateTests.now + 120_000).encode(fingerprint: HealthStateTests.fingerprint)
        #expect(HealthStateTests.reason(ahead) == "written 120 s in the future (clock skew?)")
        // Intact files with times no clock gives: refused, and no arithmetic on them overflows.
        let ancient = HealthStateTests.sample(writtenAt: .min).encode(fingerprint: HealthStateTests.fingerprint)
        #expect(HealthStateTests.reason(ancient) == "written at \(Int64.min) ms, not a possible time")
        let distant = HealthStateTests.sample(writtenAt: .max).encode(fingerprint: HealthStateTests.fingerprint)
        #expect(HealthStateTests.reason(distant) == "written at \(Int64.max) ms, not a possible time")
        #expect(HealthStateTests.reason(good) == "accepted")
    }

    @Test func errorsSayTheirKind() {
        func kind(_ bytes: [UInt8], memberCount: Int = 3) -> HealthStateError.Kind? {
            guard case .failure(let error) = HealthStateTests.decode(bytes, memberCount: memberCount) else { return nil }
            return (error as? HealthStateError)?.kind
        }
        let good = HealthStateTests.sample().encode(fingerprint: HealthStateTests.fingerprint)
        var future = good
        future[8] = 2
        #expect(kind(Array(good.dropLast())) == .corrupt)
        #expect(kind(future) == .version)
        #expect(kind(good, memberCount: 2) == .otherSnapshot)
        #expect(kind(HealthStateTests.sample(writtenAt: HealthStateTests.now - 60_000).encode(fingerprint: HealthStateTests.fingerprint)) == .stale)
        #expect(kind(HealthStateTests.sample(writtenAt: HealthStateTests.now + 61_000).encode(fingerprint: HealthStateTests.fingerprint)) == .future)
        #expect(kind(good) == nil)
    }

    @Test func staleness() {
        let state = HealthStateTests.sample()
        #expect(!state.isStale(now: HealthStateTests.now))
        #expect(state.isStale(now: HealthStateTests.now + 30_000))
    }
}
