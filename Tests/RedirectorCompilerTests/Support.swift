import Foundation
import RedirectorCompiler
import RedirectorCore
@_exported import RedirectorTestSupport
import Testing

/// A temporary directory with files, removed when the fixture is released.
final class Fixture {
    /// Where the files are.
    let directory = TemporaryDirectory(label: "rdr-compiler")

    init(_ files: [String: String] = [:]) throws {
        for (name, text) in files { try write(name, text) }
    }

    /// Absolute path of `name` inside the fixture.
    func path(_ name: String) -> String { directory.path(name) }

    /// Writes a file (creating directories).
    func write(_ name: String, _ text: String) throws {
        try directory.write(name, bytes: Array(text.utf8))
    }

    /// Compiles `config` (written as `redirector.yaml`) and opens the result from memory.
    func compile(_ config: String, name: String = "redirector.yaml") throws -> Snapshot {
        try write(name, config)
        let contents = try SnapshotCompiler(configPath: path(name)).compile(createdAt: 1_700_000_000)
        return try Snapshot(bytes: contents.encoded())
    }

    /// The error message compiling `config` produces ("accepted" when it compiles).
    func compileError(_ config: String, name: String = "redirector.yaml") -> String {
        do {
            _ = try compile(config, name: name)
            return "accepted"
        } catch {
            return "\(error)"
        }
    }
}

/// Compiles an example config of the repository.
func compileExample(_ relative: String) throws -> Snapshot {
    let contents = try SnapshotCompiler(configPath: repositoryPath(relative)).compile(createdAt: 1_700_000_000)
    return try Snapshot(bytes: contents.encoded())
}

/// The examples, compiled once for all tests.
enum Examples {
    static let simple: Result<Snapshot, any Error> = Result { try compileExample("examples/simple/redirector.yaml") }
    static let registry: Result<Snapshot, any Error> = Result { try compileExample("examples/registry.k8s.io/redirector.yaml") }
}

extension Snapshot {
    /// Shorthand for explanations in tests.
    func ask(_ client: String, _ target: String, method: String = "GET") -> DecisionExplanation {
        explain(client: client, method: method, target: target)
    }

    /// The raw decision for byte-exact targets (no String round trip).
    func decide(client: String, method: String = "GET", targetBytes: [UInt8], capacity: Int = 4096) -> (Decision, [UInt8]) {
        var buffer = [UInt8](repeating: 0xAA, count: capacity)
        let decision = method.utf8CString.withUnsafeBytes { methodRaw in
            targetBytes.withUnsafeBytes { targetRaw in
                buffer.withUnsafeMutableBytes { location in
                    decide(client: IPAddress(client), method: UnsafeRawBufferPointer(rebasing: methodRaw.dropLast()),
                           target: targetRaw, location: location)
                }
            }
        }
        return (decision, buffer)
    }
}

