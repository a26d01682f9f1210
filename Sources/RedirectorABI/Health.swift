// rdr_health: the members' health as decisions read it, loaded from the state file the prober
// writes (RedirectorCore's HealthState codec), and rdr_format_skipped, which explains a decision
// by the members it passed over.
//
// An `rdr_health *` is an `Unmanaged<Health>` (retained until rdr_health_free). Decisions read its
// `view` without touching reference counts; only rdr_health_load replaces it (see the threading
// note in include/redirector.h).

import CRedirector
import RedirectorCore

/// A health state for one table: the loaded state (nil: every member up) and the view of it
/// decisions read.
final class Health {
    /// The `rdr_table *` it was made for: with another table a decision ignores it.
    let table: OpaquePointer
    /// The table's ``Snapshot/healthFingerprint`` and ``Policy/memberCount``, which a file must match.
    let fingerprint: UInt64
    let memberCount: Int
    /// The state last loaded, retained while decisions read `view` (which points into it).
    private(set) var state: HealthState?
    /// What decisions read.
    private(set) var view = HealthView.allUp
    /// Members down in `state`.
    private(set) var downCount: Int32 = 0

    init(table: OpaquePointer, snapshot: Snapshot) {
        self.table = table
        fingerprint = snapshot.healthFingerprint
        memberCount = snapshot.policy.memberCount
    }

    /// Unix milliseconds after which `state` is stale, 0 without one.
    var expires: Int64 {
        guard let state else { return 0 }
        return state.writtenAt &+ state.staleAfter
    }

    /// Decodes a state file's bytes at `now` (Unix ms) and uses it; on failure every member is up.
    func load(_ bytes: UnsafeRawBufferPointer, now: Int64) throws {
        do {
            let decoded = try HealthState.decode(bytes, fingerprint: fingerprint, memberCount: memberCount, now: now)
            state = decoded
            view = decoded.view
            downCount = Int32(truncatingIfNeeded: decoded.downCount)
        } catch {
            reset()
            throw error
        }
    }

    /// Forgets the loaded state: every member up.
    func reset() {
        view = .allUp
        state = nil
        downCount = 0
    }
}

@inline(__always)
private func health(_ pointer: OpaquePointer?) -> Unmanaged<Health>? {
    pointer.map { Unmanaged<Health>.fromOpaque(UnsafeRawPointer($0)) }
}

/// The view a decision with `table` reads from `pointer` (an `rdr_health *`): all up for NULL or
/// a health state made for another table.
@inline(__always)
func healthView(_ pointer: OpaquePointer?, table: OpaquePointer) -> HealthView {
    // HealthView(words: nil, ...) is .allUp without the static's lazy-initialization check.
    guard let health = health(pointer) else { return HealthView(words: nil, slotCount: 0) }
    return health._withUnsafeGuaranteedRef { $0.table == table ? $0.view : HealthView(words: nil, slotCount: 0) }
}

/// Calls `body` with the view a decision of `fields` reads: its health state's, with the members
/// `fields.missing` names (presence checks that did not find the object) down as well, and the
/// verifying routes skipped when `fields.checks_exhausted` says so.
@inline(__always)
func withHealth<Result>(_ fields: rdr_request, table pointer: OpaquePointer, snapshot: Snapshot,
                        _ body: (HealthView) -> Result) -> Result {
    let view = healthView(fields.health, table: pointer)
    let exhausted = fields.checks_exhausted != 0
    guard let missing = fields.missing, fields.missing_count > 0 else {
        return exhausted ? view.excluding([], memberCount: 0, skippingVerifyingRoutes: true, body) : body(view)
    }
    let slots = UnsafeBufferPointer(start: missing, count: min(fields.missing_count, snapshot.policy.memberCount))
    return view.excluding(slots, memberCount: snapshot.policy.memberCount, skippingVerifyingRoutes: exhausted, body)
}

@_cdecl("rdr_health_new")
public func rdr_health_new(_ pointer: OpaquePointer?) -> OpaquePointer? {
    guard let pointer, let snapshot = table(pointer) else { return nil }
    return OpaquePointer(Unmanaged.passRetained(Health(table: pointer, snapshot: snapshot)).toOpaque())
}

@_cdecl("rdr_health_load")
public func rdr_health_load(_ pointer: OpaquePointer?, _ data: UnsafeRawPointer?, _ length: Int, _ now: Int64,
                            _ message: UnsafeMutablePointer<CChar>?, _ messageLength: Int) -> Int32 {
    guard let health = health(pointer) else { return RDR_EINVAL }
    let contents = UnsafeRawBufferPointer(start: length > 0 ? data : nil, count: data == nil ? 0 : max(length, 0))
    do {
        try health.takeUnretainedValue().load(contents, now: now)
        report("", into: message, length: messageLength)
        return RDR_OK
    } catch {
        report("\(error)", into: message, length: messageLength)
        return RDR_EHEALTH
    }
}

@_cdecl("rdr_health_expires")
public func rdr_health_expires(_ pointer: OpaquePointer?) -> Int64 {
    health(pointer)?.takeUnretainedValue().expires ?? 0
}

@_cdecl("rdr_health_down_count")
public func rdr_health_down_count(_ pointer: OpaquePointer?) -> Int32 {
    health(pointer)?.takeUnretainedValue().downCount ?? 0
}

@_cdecl("rdr_health_free")
public func rdr_health_free(_ pointer: OpaquePointer?) {
    health(pointer)?.release()
}

@_cdecl("rdr_format_skipped")
public func rdr_format_skipped(_ pointer: OpaquePointer?, _ request: UnsafePointer<rdr_request>?,
                               _ buffer: UnsafeMutablePointer<CChar>?, _ length: Int) -> Int32 {
    guard let handle = handle(pointer), let pointer, let request, let buffer, length > 0 else { return RDR_EINVAL }
    let snapshot = handle.pointee.owner.takeUnretainedValue()
    let fields = request.pointee
    let client = AddressParser.parseAddress(bytes(fields.client, fields.client_len))
    var trace = RecordedDecisionTrace()
    _ = withHealth(fields, table: pointer, snapshot: snapshot) { health in
        withRequestHeaders(fields, reading: handle.pointee.readsHeaders, snapshot: snapshot) { headers in
            snapshot.decide(client: client, method: bytes(fields.method, fields.method_len),
                            target: bytes(fields.path, fields.path_len), headers: headers, health: health,
                            location: UnsafeMutableRawBufferPointer(start: nil, count: 0), trace: &trace)
        }
    }
    let text = snapshot.skipped(trace).joined(separator: " ")
    let utf8 = Array(text.utf8)
    guard utf8.count < length, utf8.count <= Int(Int32.max) else {
        buffer[0] = 0
        return RDR_ENOSPC
    }
    for (index, byte) in utf8.enumerated() { buffer[index] = CChar(bitPattern: byte) }
    buffer[utf8.count] = 0
    return Int32(utf8.count)
}
