import Foundation

/// The repository root, found from this file's path (Tests/RedirectorTestSupport/Repository.swift).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Absolute path of a file in the repository.
public func repositoryPath(_ relative: String) -> String {
    repositoryRoot.appendingPathComponent(relative).path
}

/// A file under `examples/data`.
public func exampleData(_ name: String) -> URL {
    repositoryRoot.appendingPathComponent("examples/data").appendingPathComponent(name)
}

/// A temporary directory, removed when the object is released.
public final class TemporaryDirectory {
    /// Where it is.
    public let url: URL

    /// Creates a fresh directory named after `label`.
    public init(label: String = "redirector-tests") {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// Absolute path of `name` inside the directory.
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `bytes` to `name` (creating directories); returns the path.
    @discardableResult
    public func write(_ name: String, bytes: [UInt8]) throws -> String {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: file)
        return file.path
    }
}
