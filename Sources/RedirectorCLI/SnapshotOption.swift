import ArgumentParser
import RedirectorCore

/// `-s/--snapshot PATH`, shared by the commands that read one snapshot.
struct SnapshotOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The snapshot.")
    var snapshot: String

    /// Opens the snapshot, or fails with the loader's message.
    func open() throws -> Snapshot { try openSnapshot(snapshot) }
}
