import ArgumentParser
import Foundation
import RedirectorCore

/// `redirector conformance`: runs the conformance suite (Tests/Conformance) against every backend and
/// reports differences and speed. The harness is a Python package (`conformance`) that starts the real
/// servers; this command finds it and hands it the arguments. See docs/conformance.md.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run the conformance suite against every backend; report differences, latency and throughput.",
        discussion: """
            Everything after `conformance` goes to the harness (python3 -m conformance in Tests/Conformance): \
            `redirector conformance run --backends all --report out/conformance`, `… diff --count 2000`, \
            `… list`, `… --help`. Exits non-zero when any case fails or any backend disagrees. \
            Environment: REDIRECTOR_CONFORMANCE_DIR (the directory holding the `conformance` package), \
            REDIRECTOR_PYTHON (default python3). See docs/conformance.md.
            """,
        subcommands: [ConformanceHarnessCommand.self],
        defaultSubcommand: ConformanceHarnessCommand.self)
}

/// Hands the arguments to the Python harness (the default subcommand).
struct ConformanceHarnessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "harness",
        abstract: "Run the Python harness with these arguments (the default).",
        shouldDisplay: false)

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the harness (see `redirector conformance --help`).")
    var arguments: [String] = []

    func run() throws {
        let executable = ConformanceHarnessCommand.currentExecutable()
        guard let directory = ConformanceHarnessCommand.harnessDirectory(executable: executable) else {
            throw CommandFailure(description: """
                conformance: the harness (Tests/Conformance/conformance) was not found next to \(executable) \
                or the current directory; set REDIRECTOR_CONFORMANCE_DIR to the directory that holds it
                """)
        }
        let python = ProcessInfo.processInfo.environment["REDIRECTOR_PYTHON"] ?? "python3"
        let existing = ProcessInfo.processInfo.environment["PYTHONPATH"].map { ":" + $0 } ?? ""
        setenv("PYTHONPATH", directory + existing, 1)
        if ProcessInfo.processInfo.environment["REDIRECTOR_CLI"] == nil {
            setenv("REDIRECTOR_CLI", executable, 1)
        }
        let argv = [python, "-m", "conformance"] + arguments
        var cArguments = argv.map { strdup($0) }
        cArguments.append(nil)
        execvp(python, &cArguments)
        let reason = String(cString: strerror(errno))
        throw CommandFailure(description: "conformance: cannot run \(python): \(reason) (set REDIRECTOR_PYTHON)")
    }

    /// The absolute path of this executable.
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 { return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments.first ?? "redirector"
    }

    /// REDIRECTOR_CONFORMANCE_DIR, else `Tests/Conformance` above the executable or the current directory.
    static func harnessDirectory(executable: String) -> String? {
        let fileManager = FileManager.default
        func holdsHarness(_ directory: String) -> Bool {
            fileManager.fileExists(atPath: directory + "/conformance/__main__.py")
        }
        if let directory = ProcessInfo.processInfo.environment["REDIRECTOR_CONFORMANCE_DIR"] {
            return holdsHarness(directory) ? directory : nil
        }
        for start in [URL(fileURLWithPath: executable).deletingLastPathComponent(),
                      URL(fileURLWithPath: fileManager.currentDirectoryPath)] {
            var directory = start.standardizedFileURL
            for _ in 0..<8 {
                let candidate = directory.appendingPathComponent("Tests/Conformance").path
                if holdsHarness(candidate) { return candidate }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        return nil
    }
}
