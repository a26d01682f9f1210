// Shared helpers of the fuzz targets that work on snapshots (`snapshot`, `decide`).
import Glibc
import RedirectorCore

/// Reads a whole file, or nil.
func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count == 0 { break }
        bytes.append(contentsOf: chunk[..<count])
    }
    return bytes
}

/// Snapshot paths named by a colon-separated environment variable.
func snapshotPaths(_ variable: String) -> [String] {
    guard let value = getenv(variable) else { return [] }
    return String(cString: value).split(separator: ":").map(String.init)
}

/// Prints a failure with the offending values and aborts, so libFuzzer saves the input.
func fail(_ message: String) -> Never {
    fputs("FUZZ FAILURE: \(message)\n", stderr)
    abort()
}

/// Text of bytes with non-printable bytes escaped.
func shown(_ bytes: some Sequence<UInt8>) -> String {
    TextEscaping.displayBytes(bytes)
}

/// Every base URL a redirect of `snapshot` may name: the members of its pools (every target is one).
func configuredTargets(_ snapshot: Snapshot) -> Set<[UInt8]> {
    Set(snapshot.policy.members.map { Array(snapshot.strings.bytes($0.url)) })
}

/// The decision contract's invariants for one decision; aborts with a message when one fails.
///
/// - a redirect's `Location` fits the reported length, holds no control byte, space or DEL;
/// - it starts with the decision's target, which is a configured target;
/// - right after the target comes `/`, `?` or the end, so the request can never change the host
///   (no `@`, `.evil.example`, `:port` or `\` appended to the authority);
/// - pass decisions carry status 0, redirects 3xx, fixed answers 100–599.
func checkDecision(_ snapshot: Snapshot, _ targets: Set<[UInt8]>, _ decision: Decision,
                   method: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                   location: UnsafeMutableRawBufferPointer) {
    func context() -> String { "method \"\(shown(method))\" target \"\(shown(target))\"" }
    switch decision.action {
    case .pass:
        guard decision.status == 0 else { fail("pass with status \(decision.status): \(context())") }
    case .respond:
        guard (100...599).contains(decision.status) else {
            fail("respond with status \(decision.status): \(context())")
        }
        guard decision.route >= 0, Int(decision.route) < snapshot.policy.routes.count else { fail("respond without route") }
    case .redirect:
        guard (300...399).contains(decision.status) else { fail("redirect with status \(decision.status): \(context())") }
        guard decision.route >= 0, Int(decision.route) < snapshot.policy.routes.count else { fail("redirect without route") }
        let base = Array(snapshot.strings.bytes(decision.target))
        guard targets.contains(base) else { fail("redirect to unconfigured target \"\(shown(base))\": \(context())") }
        guard decision.locationLength <= location.count else { return }  // too long for the buffer: nothing written
        let value = Array(UnsafeRawBufferPointer(rebasing: location[..<decision.locationLength]))
        // The target as configured, or without its final '/' when the path's own '/' follows it.
        let written = value.starts(with: base) || base.last != UInt8(ascii: "/") ? base : Array(base.dropLast())
        guard value.starts(with: written), written == base || value.dropFirst(written.count).first == UInt8(ascii: "/") else {
            fail("Location \"\(shown(value))\" does not start with its target: \(context())")
        }
        if value.count > written.count {
            let next = value[written.count]
            guard next == UInt8(ascii: "/") || next == UInt8(ascii: "?") else {
                fail("Location \"\(shown(value))\" continues the target's authority with '\(shown([next]))': \(context())")
            }
        }
        for byte in value where !ByteClass.isPathByte(byte) {
            fail("Location \"\(shown(value))\" holds byte 0x\(String(byte, radix: 16)): \(context())")
        }
        // Every redirected target was a safe one.
        guard target.count > 0, target[0] == UInt8(ascii: "/") else { fail("redirected a target not starting with '/': \(context())") }
    }
    if decision.attributes.provider >= 0 {
        guard Int(decision.attributes.provider) < snapshot.policy.providers.count else { fail("provider index out of range") }
    }
}
