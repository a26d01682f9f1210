import ArgumentParser
import Foundation
import RedirectorCompiler
import RedirectorCore

/// `redirector compile`: config and sources → snapshot.
struct CompileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile", abstract: "Compile a config and its sources into a snapshot (.rdb).")

    @Option(name: .shortAndLong, help: "The YAML config.")
    var config: String

    @Option(name: .shortAndLong, help: "The snapshot to write (replaced atomically).")
    var output: String

    @Option(help: ArgumentHelp("Read URL sources from `redirector update`'s cache (else their `path`).", valueName: "dir"))
    var cache: String?

    @Flag(name: .shortAndLong, help: "Print the whole compile report (conflicts, masked prefixes).")
    var verbose = false

    func run() throws {
        let start = ContinuousClock.now
        let contents: SnapshotContents
        do {
            var compiler = try SnapshotCompiler(configPath: config)
            if let cache = cache.map(SourceCache.init(directory:)) {
                for source in try compiler.urlSources() { compiler.fetched[source.url] = cache.fetchedSource(for: source.url) }
            }
            contents = try compiler.compile()
        } catch let error as ConfigError {
            throw CommandFailure(description: "\(error)")
        }
        let bytes = contents.encoded()
        // Load what was built before replacing the old file: never install a snapshot that does not open.
        do {
            _ = try Snapshot(bytes: bytes, name: output)
        } catch {
            throw CommandFailure(description: "internal error: compiled snapshot does not validate: \(error)")
        }
        try FileOutput.writeAtomically(bytes, to: output)
        let elapsed = ContinuousClock.now - start
        let lines = contents.report.split(separator: "\n")
        let shown = verbose ? lines : lines.filter { !$0.hasPrefix("conflict") && !$0.contains("host bits") }
        for line in shown { printError(String(line)) }
        let conflicts = lines.filter { $0.hasPrefix("conflict") }.count
        let masked = lines.filter { $0.contains("host bits") }.count
        if !verbose && conflicts + masked > 0 {
            printError("\(conflicts) conflict(s), \(masked) prefix(es) with host bits masked; --verbose lists them")
        }
        printError("wrote \(output): \(bytes.count) bytes in \(elapsed.milliseconds) ms")
    }
}
