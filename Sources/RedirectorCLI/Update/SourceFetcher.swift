import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import RedirectorCompiler
import RedirectorCore
import RedirectorHealth

/// The bounds of every fetch `redirector update` makes.
struct FetchLimits: Sendable {
    /// Longest time one attempt may take, connection to last body byte (a slow trickle fails).
    var timeout: Duration
    /// Further attempts after a 5xx, a connection failure or a timeout (a 4xx is not retried).
    var retries: Int
    /// Most body bytes accepted.
    var maximumBytes: Int
    /// Pause before the first retry, doubled before each further one.
    var backoff: Duration = .milliseconds(250)
}

/// What a conditional GET found.
enum FetchOutcome: Sendable {
    /// 304: the cached copy is current.
    case notModified
    /// 200: the new bytes are in the temporary file given to the fetch.
    case downloaded(etag: String?, lastModified: String?, sha256: String, size: UInt64)
}

/// Why a fetch failed: the reason of the `update: <url>: fetch: <reason>` message.
struct FetchFailure: Error, CustomStringConvertible {
    /// The reason.
    var description: String
    /// Whether another attempt may succeed.
    var retryable: Bool
}

/// Fetches URL sources with conditional GETs (AsyncHTTPClient): `If-None-Match` and
/// `If-Modified-Since` from the cached copy's validators, the body streamed to a file under a
/// size cap and a whole-attempt deadline, redirects followed only within the same host (and
/// never from https to http), bounded retries with backoff. No `Accept-Encoding` is sent and
/// nothing is decoded: the bytes stored are the bytes served.
final class SourceFetcher: Sendable {
    /// `User-Agent` of fetches.
    static let userAgent = "redirector-update/1"
    /// Most redirects followed for one URL.
    static let maximumRedirects = 5

    private let client: HTTPClient
    private let limits: FetchLimits

    /// A fetcher with its own client on NIO's shared event loops.
    init(limits: FetchLimits) {
        self.limits = limits
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10)), decompression: .disabled)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Shuts the client down.
    func shutdown() async {
        try? await client.shutdown()
    }

    /// Fetches `url` into `temporary`, conditional on `cached`, retrying transient failures.
    func fetch(_ url: String, cached: CacheMetadata?, into temporary: String) async throws -> FetchOutcome {
        var attempt = 0
        var backoff = limits.backoff
        while true {
            do {
                return try await withDeadline { try await self.get(url, cached: cached, into: temporary) }
            } catch let failure as FetchFailure where failure.retryable && attempt < limits.retries {
                attempt += 1
                try await Task.sleep(for: backoff)
                backoff *= 2
            } catch let failure as FetchFailure where attempt > 0 {
                throw FetchFailure(description: "\(failure) (after \(attempt + 1) attempts)", retryable: false)
            }
        }
    }

    /// Runs `body`, failing it (and cancelling its request) once ``FetchLimits/timeout`` has passed.
    private func withDeadline(_ body: @escaping @Sendable () async throws -> FetchOutcome) async throws -> FetchOutcome {
        let timeout = limits.timeout
        let timedOut = self.timedOut
        return try await withThrowingTaskGroup(of: FetchOutcome.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw timedOut
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// One attempt: the GET, and the redirects it is allowed to follow.
    private func get(_ url: String, cached: CacheMetadata?, into temporary: String) async throws -> FetchOutcome {
        guard let origin = URL(string: url), let host = origin.host?.lowercased() else {
            throw FetchFailure(description: "not a URL", retryable: false)
        }
        var current = origin
        for _ in 0...Self.maximumRedirects {
            var request = HTTPClientRequest(url: current.absoluteString)
            request.headers.add(name: "User-Agent", value: Self.userAgent)
            if let etag = cached?.etag { request.headers.add(name: "If-None-Match", value: etag) }
            if let lastModified = cached?.lastModified { request.headers.add(name: "If-Modified-Since", value: lastModified) }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: TimeAmount(limits.timeout))
            } catch {
                throw failure(error)
            }
            switch response.status.code {
            case 200:
                return try await download(response, into: temporary)
            case 304 where cached != nil:
                return .notModified
            case 301, 302, 303, 307, 308:
                guard let location = response.headers.first(name: "Location"),
                      let next = URL(string: location, relativeTo: current)?.absoluteURL, let nextHost = next.host?.lowercased() else {
                    throw FetchFailure(description: "HTTP \(response.status.code) without a usable Location", retryable: false)
                }
                guard nextHost == host else {
                    throw FetchFailure(description: "redirected to another host, \(nextHost) (\(next.absoluteString)); only redirects within \(host) are followed", retryable: false)
                }
                guard origin.scheme?.lowercased() != "https" || next.scheme?.lowercased() == "https" else {
                    throw FetchFailure(description: "redirected from https to http (\(next.absoluteString))", retryable: false)
                }
                current = next
            case 500...599:
                throw FetchFailure(description: "HTTP \(response.status.code) \(response.status.reasonPhrase)", retryable: true)
            default:
                throw FetchFailure(description: "HTTP \(response.status.code) \(response.status.reasonPhrase)", retryable: false)
            }
        }
        throw FetchFailure(description: "more than \(Self.maximumRedirects) redirects", retryable: false)
    }

    /// Streams a 200's body into `path` (fsynced), hashing it, within the size cap.
    private func download(_ response: HTTPClientResponse, into path: String) async throws -> FetchOutcome {
        let maximum = limits.maximumBytes
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maximum {
            throw FetchFailure(description: "Content-Length \(length) is over the limit of \(maximum) bytes (--max-bytes)", retryable: false)
        }
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw FetchFailure(description: "cannot create \(path)", retryable: false)
        }
        defer { try? handle.close() }
        var hasher = SHA256Digest()
        var size = 0
        do {
            for try await chunk in response.body {
                size += chunk.readableBytes
                guard size <= maximum else {
                    throw FetchFailure(description: "body is over the limit of \(maximum) bytes (--max-bytes)", retryable: false)
                }
                try chunk.withUnsafeReadableBytes { bytes in
                    hasher.update(bytes)
                    try handle.write(contentsOf: bytes)
                }
            }
            try handle.synchronize()
        } catch let failure as FetchFailure {
            throw failure
        } catch {
            throw failure(error)
        }
        return .downloaded(etag: response.headers.first(name: "ETag"), lastModified: response.headers.first(name: "Last-Modified"),
                           sha256: HexDigits.encode(hasher.finalize()), size: UInt64(size))
    }

    /// A client error as a failure: timeouts and connection failures are worth retrying.
    private func failure(_ error: any Error) -> FetchFailure {
        guard case .failed(let reason, let text) = HTTPProbeClient.classify(error) else {
            return FetchFailure(description: "\(error)", retryable: false)
        }
        if reason == .timeout { return timedOut }
        return FetchFailure(description: text, retryable: reason == .connect)
    }

    /// The failure of an attempt that ran out of time.
    private var timedOut: FetchFailure {
        FetchFailure(description: "no complete answer within \(limits.timeout) (--timeout)", retryable: true)
    }
}
