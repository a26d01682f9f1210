import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RedirectorCore

/// The real probe: an HTTP GET or HEAD with AsyncHTTPClient (health checks and presence checks).
///
/// Redirects are not followed (a 3xx is the member's answer), a failed connection is not retried
/// (the next probe is the retry), and a GET body is read and dropped, at most
/// ``maximumBodyBytes`` of it, so a connection can be reused.
public final class HTTPProbeClient: HealthProbeClient {
    /// Most bytes of a GET answer's body read before the rest is abandoned.
    public static let maximumBodyBytes = 64 * 1024
    /// `User-Agent` of probes.
    public static let userAgent = "redirector-probe/1"

    private let client: HTTPClient

    /// A client on `eventLoopGroup` (NIO's shared singleton group by default).
    public init(eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10)), decompression: .disabled)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.idleTimeout = .seconds(30)
        configuration.httpVersion = .http1Only
        client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration)
    }

    /// Probes `target`: the whole exchange, connection included, must finish within its timeout.
    public func probe(_ target: ProbeTarget) async -> ProbeResponse {
        await send(target.method == "HEAD" ? .HEAD : .GET, url: target.url, timeout: target.timeout)
    }

    /// A HEAD of `url` within `timeout` (a presence check).
    public func head(url: String, timeout: Duration) async -> ProbeResponse {
        await send(.HEAD, url: url, timeout: timeout)
    }

    private func send(_ method: HTTPMethod, url: String, timeout: Duration) async -> ProbeResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        let deadline = NIODeadline.now() + TimeAmount.nanoseconds(max(1, timeout.nanoseconds))
        do {
            let response = try await client.execute(request, deadline: deadline)
            var read = 0
            for try await chunk in response.body {
                read &+= chunk.readableBytes
                if read > Self.maximumBodyBytes { break }
            }
            return .status(Int(response.status.code))
        } catch {
            return Self.classify(error)
        }
    }

    /// Shuts the client down.
    public func shutdown() async {
        try? await client.shutdown()
    }

    private static let timeouts: [HTTPClientError] = [
        .deadlineExceeded, .connectTimeout, .readTimeout, .writeTimeout, .getConnectionFromPoolTimeout,
        .tlsHandshakeTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout,
    ]

    /// The failure reason of an AsyncHTTPClient error (`redirector update` retries the same
    /// timeouts and connection failures a probe counts as such).
    public static func classify(_ error: any Error) -> ProbeResponse {
        let text = "\(error)"
        if let error = error as? HTTPClientError {
            if timeouts.contains(error) { return .failed(.timeout, text) }
            if error == .remoteConnectionClosed { return .failed(.connect, text) }
            return .failed(.other, text)
        }
        if let error = error as? ChannelError {
            if case .connectTimeout = error { return .failed(.timeout, text) }
            return .failed(.connect, text)
        }
        if error is NIOConnectionError || error is IOError || error is SocketAddressError {
            return .failed(.connect, text)
        }
        return .failed(.other, text)
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product &+ attoseconds / 1_000_000_000
    }
}
