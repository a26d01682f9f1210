import ArgumentParser
import Foundation
import RedirectorCompiler
import RedirectorSidecar

/// `redirector update`: fetch the config's URL sources, check them, and install a new snapshot
/// only when something changed (docs/updating.md).
struct UpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Fetch URL sources, check them, and install a new snapshot when something changed.",
        discussion: """
            Each source with a `url:` is fetched with a conditional GET (If-None-Match, If-Modified-Since) into the \
            cache. When every source is unchanged and so is the config, `unchanged` is printed and nothing is \
            written. Otherwise every source is parsed, its prefix count compared with the installed snapshot's \
            (--max-shrink), the snapshot compiled, load-checked and installed atomically, the previous ones kept \
            as SNAPSHOT.1 … SNAPSHOT.N, and --reload-command run.
            Exit status: 0 installed or unchanged; 1 the update failed, with `update: <source>: <step>: <reason>` \
            (step fetch, validate, compile, install or reload; before reload the installed snapshot and the \
            cache's valid entries are untouched); 64 usage error.
            """)

    @Option(name: .shortAndLong, help: "The YAML config. Env: REDIRECTOR_CONFIG.")
    var config: String?

    @Option(name: .shortAndLong, help: "The snapshot installed. Env: REDIRECTOR_SNAPSHOT.")
    var output: String?

    @Option(help: ArgumentHelp("Where fetched sources are kept. Env: REDIRECTOR_CACHE. Default: SNAPSHOT.cache beside the snapshot.", valueName: "dir"))
    var cache: String?

    @Option(help: ArgumentHelp("Previous snapshots kept as SNAPSHOT.1 … SNAPSHOT.N (0: none).", valueName: "n"))
    var keep = 3

    @Option(help: ArgumentHelp("Run with /bin/sh -c after a new snapshot is installed (e.g. systemctl reload …).", valueName: "cmd"))
    var reloadCommand: String?

    @Flag(help: "Install even when a source lost more than --max-shrink of its prefixes.")
    var force = false

    @Option(help: ArgumentHelp("Largest drop of a URL source's prefix count accepted, in percent of the installed snapshot's.", valueName: "percent"))
    var maxShrink: Double = 50

    @Option(help: ArgumentHelp("Longest time one fetch attempt may take, in seconds, connection to last byte.", valueName: "seconds"))
    var timeout: Double = 60

    @Option(help: ArgumentHelp("Further attempts after a 5xx, a connection failure or a timeout (4xx is not retried).", valueName: "n"))
    var retries = 2

    @Option(help: ArgumentHelp("Largest source accepted, in bytes, as downloaded and as decompressed.", valueName: "n"))
    var maxBytes = 256 << 20

    func validate() throws {
        guard keep >= 0 else { throw ValidationError("--keep \(keep): a count, 0 or more") }
        guard maxShrink.isFinite, (0...100).contains(maxShrink) else { throw ValidationError("--max-shrink \(maxShrink): a percentage from 0 to 100") }
        guard timeout.isFinite, timeout > 0, timeout <= 86_400 else { throw ValidationError("--timeout \(timeout): seconds, more than 0") }
        guard (0...10).contains(retries) else { throw ValidationError("--retries \(retries): 0 to 10") }
        guard maxBytes > 0 else { throw ValidationError("--max-bytes \(maxBytes): more than 0") }
    }

    func run() async throws {
        let env = SidecarRunner.environment
        guard let configPath = config ?? env("REDIRECTOR_CONFIG") else {
            throw ValidationError("a config is required: --config FILE or REDIRECTOR_CONFIG")
        }
        guard let outputPath = (output ?? env("REDIRECTOR_SNAPSHOT")).map({ URL(fileURLWithPath: $0).standardizedFileURL.path }) else {
            throw ValidationError("a snapshot is required: --output FILE or REDIRECTOR_SNAPSHOT")
        }
        let update = SnapshotUpdate(
            configPath: configPath, outputPath: outputPath,
            cache: SourceCache(directory: cache ?? env("REDIRECTOR_CACHE") ?? outputPath + ".cache"),
            limits: FetchLimits(timeout: .milliseconds(Int64(timeout * 1000)), retries: retries, maximumBytes: maxBytes),
            keep: keep, shrink: ShrinkRule(maximumPercent: maxShrink), force: force, reloadCommand: reloadCommand)
        do {
            switch try await update.run() {
            case .unchanged(let sources):
                print("unchanged: \(outputPath) is current (\(sources) URL source(s) not modified)")
            case .installed:
                break
            }
        } catch let failure as SnapshotUpdate.Failure {
            // The message exactly as documented, for logs and alerts to match on.
            printError(failure.description)
            throw ExitCode.failure
        }
    }
}
