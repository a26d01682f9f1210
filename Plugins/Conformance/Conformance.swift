import Foundation
import PackagePlugin

/// `swift package conformance [harness arguments]`: builds the `redirector` CLI (release) and runs
/// `redirector conformance …` — the conformance suite (Tests/Conformance) on every backend, with a
/// report in out/conformance unless arguments say otherwise. Exits non-zero on any failure.
///
///     swift package conformance                                  # run --backends all --report out/conformance
///     swift package conformance run --backends core,nginx-module --case trust/
///     swift package conformance diff --count 2000
///     swift package conformance --no-build run …                 # use the CLI already built
///
/// See docs/conformance.md.
@main
struct Conformance: CommandPlugin {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var arguments = arguments
        let root = context.package.directoryURL
        var executable = root.appendingPathComponent(".build/release/redirector")
        if let index = arguments.firstIndex(of: "--no-build") {
            arguments.remove(at: index)
        } else {
            let result = try packageManager.build(
                .product("redirector"), parameters: .init(configuration: .release, logging: .concise))
            guard result.succeeded else {
                print(result.logText)
                throw Failure(description: "building the redirector CLI failed")
            }
            if let built = result.builtArtifacts.first(where: { $0.kind == .executable }) {
                executable = built.url
            }
        }
        if arguments.isEmpty {
            arguments = ["run", "--backends", "all", "--report", root.appendingPathComponent("out/conformance").path]
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["conformance"] + arguments
        process.currentDirectoryURL = root
        var environment = ProcessInfo.processInfo.environment
        environment["REDIRECTOR_CONFORMANCE_DIR"] = root.appendingPathComponent("Tests/Conformance").path
        process.environment = environment
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "conformance failed (exit status \(process.terminationStatus)); see the report above")
        }
    }
}
