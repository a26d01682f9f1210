import Foundation
import RedirectorCompiler
import RedirectorCore

/// One run of `redirector update`: fetch every URL source into the cache (conditionally),
/// decide whether anything changed, compile, check, install, reload. Until the install step,
/// nothing outside temporary files in the cache is written: a failure leaves the installed
/// snapshot and the valid cache entries as they were.
struct SnapshotUpdate {
    /// The config file.
    var configPath: String
    /// The installed snapshot.
    var outputPath: String
    /// Where fetched copies and their records live.
    var cache: SourceCache
    /// Bounds of every fetch (`maximumBytes` also caps a source's decompressed size).
    var limits: FetchLimits
    /// Previous snapshots kept (`--keep`).
    var keep: Int
    /// The shrink limit (`--max-shrink`), ignored with `force`.
    var shrink: ShrinkRule
    /// `--force`.
    var force: Bool
    /// Run with `/bin/sh -c` after an install.
    var reloadCommand: String?

    /// The step that failed, as the error message names it.
    enum Step: String {
        case fetch, validate, compile, install, reload
    }

    /// A failed update: `update: <source>: <step>: <reason>`.
    struct Failure: Error, CustomStringConvertible {
        /// The source's URL, or the file the step was working on.
        var source: String
        /// The step.
        var step: Step
        /// Why.
        var reason: String

        /// The message.
        var description: String { "update: \(source): \(step.rawValue): \(reason)" }
    }

    /// What a run did.
    enum Outcome {
        /// Nothing changed upstream or in the config: nothing was written but revalidation times.
        case unchanged(sources: Int)
        /// A new snapshot is installed.
        case installed(bytes: Int, changed: Int, sources: Int)
    }

    /// One URL source's fetch, before its cache entry is promoted.
    private struct Fetched {
        var url: String
        /// The downloaded file, nil after a 304.
        var download: String?
        /// The record the cache entry gets.
        var metadata: CacheMetadata
    }

    /// Runs the update; throws ``Failure``.
    func run() async throws -> Outcome {
        var compiler: SnapshotCompiler
        let urlSources: [URLSource]
        do {
            compiler = try SnapshotCompiler(configPath: configPath)
            urlSources = try compiler.urlSources()
        } catch {
            throw Failure(source: configPath, step: .compile, reason: "\(error)")
        }
        do {
            try FileManager.default.createDirectory(atPath: cache.directory, withIntermediateDirectories: true)
        } catch {
            throw Failure(source: cache.directory, step: .fetch, reason: "cannot create the cache directory: \(error)")
        }
        // One update per cache at a time (a timer and a manual run); held until the process exits.
        let lock = open("\(cache.directory)/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            throw Failure(source: cache.directory, step: .fetch, reason: "another update is running (it holds \(cache.directory)/lock)")
        }
        defer { close(lock) }
        // Downloads a killed update left behind.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cache.directory)) ?? [] where name.hasSuffix(".download") {
            unlink("\(cache.directory)/\(name)")
        }

        var fetched: [Fetched] = []
        // Downloads not promoted into the cache are removed, whatever happens.
        defer { for download in fetched.compactMap(\.download) { unlink(download) } }
        let fetcher = SourceFetcher(limits: limits)
        do {
            for source in urlSources {
                fetched.append(try await fetch(source.url, with: fetcher))
            }
        } catch {
            await fetcher.shutdown()
            throw error
        }
        await fetcher.shutdown()

        let inputs = try inputsDigest(compiler: compiler, fetched: fetched)
        if let state = cache.installedState(), state.inputs == inputs,
           (try? SHA256Digest.file(outputPath)).map({ HexDigits.encode($0.sha256) }) == state.snapshotSHA256 {
            try promote(fetched)
            return .unchanged(sources: fetched.count)
        }

        for entry in fetched {
            compiler.fetched[entry.url] = FetchedSource(file: entry.download ?? cache.file(for: entry.url), cachePath: cache.file(for: entry.url),
                                                        fetch: entry.metadata.fetch)
        }
        compiler.maximumSourceBytes = limits.maximumBytes
        let bytes: [UInt8]
        let compiled: Snapshot
        do {
            bytes = try compiler.compile().encoded()
            compiled = try Snapshot(bytes: bytes, name: outputPath)
        } catch let error as ConfigError {
            if let source = error.source { throw Failure(source: source, step: .validate, reason: error.description) }
            throw Failure(source: configPath, step: .compile, reason: error.description)
        } catch {
            throw Failure(source: configPath, step: .compile, reason: "\(error)")
        }
        try checkShrink(compiled)

        try promote(fetched)
        do {
            try FileOutput.writeAtomically(bytes, to: outputPath, keep: keep)
        } catch {
            throw Failure(source: outputPath, step: .install, reason: "\(error)")
        }
        var hasher = SHA256Digest()
        hasher.update(bytes)
        do {
            try cache.write(InstalledState(snapshotSHA256: HexDigits.encode(hasher.finalize()), inputs: inputs))
        } catch {
            throw Failure(source: cache.stateFile, step: .install, reason: "the snapshot is installed, but its record cannot be written: \(error)")
        }
        let changed = fetched.filter { $0.download != nil }.count
        printError("update: installed \(outputPath): \(bytes.count) bytes; \(changed) of \(fetched.count) URL source(s) changed")
        try reload()
        return .installed(bytes: bytes.count, changed: changed, sources: fetched.count)
    }

    /// Fetches one URL, conditional on its cache entry.
    private func fetch(_ url: String, with fetcher: SourceFetcher) async throws -> Fetched {
        let cached = cache.metadata(for: url)
        let download = cache.file(for: url) + ".\(ProcessInfo.processInfo.processIdentifier).download"
        let outcome: FetchOutcome
        do {
            outcome = try await fetcher.fetch(url, cached: cached, into: download)
        } catch {
            unlink(download)
            throw Failure(source: url, step: .fetch, reason: "\(error)")
        }
        let now = UInt64(Date().timeIntervalSince1970)
        switch outcome {
        case .notModified:
            var metadata = cached!
            metadata.fetchedAt = now
            return Fetched(url: url, download: nil, metadata: metadata)
        case .downloaded(let etag, let lastModified, let sha256, let size):
            return Fetched(url: url, download: download,
                           metadata: CacheMetadata(url: url, etag: etag, lastModified: lastModified, fetchedAt: now, sha256: sha256, size: size))
        }
    }

    /// The digest of everything the snapshot would be compiled from: the config, its local
    /// files, each URL's bytes.
    private func inputsDigest(compiler: SnapshotCompiler, fetched: [Fetched]) throws -> String {
        var inputs: [(name: String, sha256: String)] = []
        var file = configPath
        do {
            // The config by its text, not its name: a copied site with the same config is unchanged.
            inputs.append(("config", HexDigits.encode(try SHA256Digest.file(configPath).sha256)))
            for local in try compiler.localFiles() {
                file = local
                inputs.append((local, HexDigits.encode(try SHA256Digest.file(local).sha256)))
            }
        } catch {
            throw Failure(source: file, step: .compile, reason: "\(error)")
        }
        return InstalledState.inputsDigest(inputs + fetched.map { ($0.url, $0.metadata.sha256) })
    }

    /// Refuses a URL source that lost more than the allowed share of its prefixes since the
    /// installed snapshot, unless forced.
    private func checkShrink(_ compiled: Snapshot) throws {
        guard !force, FileManager.default.fileExists(atPath: outputPath) else { return }
        guard let installed = try? Snapshot.open(path: outputPath) else {
            printError("update: \(outputPath) does not load; no shrink check against it")
            return
        }
        if let violation = shrink.violations(installed: installed.sources, compiled: compiled.sources).first {
            throw Failure(source: violation.url, step: .validate,
                          reason: "\(violation) since the installed snapshot, over --max-shrink \(shrink.maximumPercent)%; --force installs it anyway")
        }
    }

    /// Moves downloads into their cache entries and writes every entry's record.
    private func promote(_ fetched: [Fetched]) throws {
        for entry in fetched {
            let file = cache.file(for: entry.url)
            if let download = entry.download, rename(download, file) != 0 {
                throw Failure(source: entry.url, step: .install, reason: "cannot move the download into \(file): \(String(cString: strerror(errno)))")
            }
            do {
                try cache.write(entry.metadata)
            } catch {
                throw Failure(source: entry.url, step: .install, reason: "cannot write \(cache.metadataFile(for: entry.url)): \(error)")
            }
        }
    }

    /// Runs the reload command; a failure leaves the new snapshot installed.
    private func reload() throws {
        guard let reloadCommand else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", reloadCommand]
        do {
            try process.run()
        } catch {
            throw Failure(source: reloadCommand, step: .reload, reason: "cannot run /bin/sh: \(error); the new snapshot stays installed")
        }
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exited with status" : "was killed by signal"
            throw Failure(source: reloadCommand, step: .reload, reason: "\(how) \(process.terminationStatus); the new snapshot stays installed")
        }
    }
}
