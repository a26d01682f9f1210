import NIOCore
import RedirectorCore
@testable import RedirectorSidecar
import Testing

/// `X-Forwarded-For` of an AWS us-east-1 client (the test snapshot's 192.0.2.0/24).
private let awsClient = "X-Forwarded-For: 192.0.2.10"

@Suite struct ConnectionTests {
    @Test func requestsPipelinedAfterACloseAreNotAnswered() throws {
        let connection = try TestSidecar().connect()
        try connection.send("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
        let responses = try #require(Response.parse(try connection.received()))
        #expect(responses.count == 1 && responses[0].header("connection") == "close")
        #expect(!connection.isOpen)
    }
}

@Suite struct TimeoutTests {
    /// A check whose head promises a body that does not come.
    private static func stalledCheck(_ path: String = "/ext_authz/v2/a", budget: Int? = nil) -> String {
        "GET \(path) HTTP/1.1\r\nHost: t\r\n\(awsClient)\r\n" + (budget.map { "x-envoy-expected-rq-timeout-ms: \($0)\r\n" } ?? "")
            + "Content-Length: 10\r\n\r\n"
    }

    @Test func stalledCheckIsAnsweredAtTheEnvoyDeadline() throws {
        let sidecar = TestSidecar()
        let connection = try sidecar.connect()
        try connection.send(Self.stalledCheck(budget: 300))
        connection.advance(by: .milliseconds(299))
        #expect(try connection.received().isEmpty && connection.isOpen)
        connection.advance(by: .milliseconds(1))
        let answer = try connection.response()
        #expect(answer.status == 302 && answer.header("location") == "https://registry.aws.test/v2/a")
        #expect(answer.header("connection") == "close")
        #expect(!connection.isOpen)
        let metrics = String(decoding: sidecar.metrics.exposition(store: sidecar.store, ready: true, now: 0), as: UTF8.self)
        #expect(metrics.contains("redirector_request_timeouts_total 1\n"))
    }
}
