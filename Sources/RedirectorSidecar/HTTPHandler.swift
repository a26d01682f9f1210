import Logging
import NIOCore
import NIOHTTP1
import RedirectorCore
import RedirectorPresence

/// Shared, immutable per-server state the connection handlers read.
final class SidecarContext: Sendable {
    let translator: RequestTranslator
    let store: SnapshotStore
    let metrics: SidecarMetrics
    let logger: Logger
    let lifecycle: ServerLifecycle
    /// Checks presence for `verify` routes, shared by every connection (one HEAD per URL in flight).
    let presence: PresenceChecker

    init(translator: RequestTranslator, store: SnapshotStore, metrics: SidecarMetrics, logger: Logger, lifecycle: ServerLifecycle,
         presence: PresenceChecker) {
        self.translator = translator
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.lifecycle = lifecycle
        self.presence = presence
    }

    var configuration: SidecarConfiguration { translator.configuration }

    /// What `/readyz` and `redirector_ready` report: a snapshot is loaded, every listener is bound and
    /// shutdown has not begun.
    var isReady: Bool { store.current != nil && lifecycle.isServing }
}

/// Answers the requests of one connection. Decisions are made synchronously on the event loop with the
/// allocation-free decider; the `Location` is built in a buffer owned by the connection. A decision
/// that needs a presence check (a `verify` route) is finished by a task and answered when the check
/// is, without blocking the loop.
///
/// Responses are serialized straight into a `ByteBuffer` (no response encoder or pipelining handler):
/// every request is answered when its end arrives, in order; an answer that waits for a check holds
/// back the answers pipelined after it.
final class SidecarHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: [UInt8]
        var version: HTTPVersion
        var isHead: Bool
        var keepAlive: Bool
        var started: UInt64
        var timed: Bool
    }

    private let shared: SidecarContext
    private let mode: ListenerMode
    private let location: UnsafeMutableRawBufferPointer
    private var peer: IPAddress?
    private var peerText = "-"
    private var cached: ServingState?
    private var cachedGeneration = -1
    private var pending: Pending?
    /// The answer of the current request when it waits for a presence check.
    private var later: EventLoopFuture<Pending>?
    /// The answers being waited for, in order: the last one's write; nil when none waits.
    private var writes: EventLoopFuture<Void>?
    private var isActive = true
    private var awaitingEnd = false
    private var bodyBytes = 0
    private var requestTimeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var quiescing = false
    private var closing = false

    init(context: SidecarContext, mode: ListenerMode) {
        self.shared = context
        self.mode = mode
        self.location = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        self.requestTimeout = context.configuration.requestTimeout.timeAmount
    }

    deinit {
        location.deallocate()
    }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            peerText = address.ipAddress ?? "\(address)"
            peer = address.ipAddress.flatMap { IPAddress($0) }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !closing else { return }  // pipelined after a "connection: close" answer
            bodyBytes = 0
            awaitingEnd = true
            pending = answer(head, eventLoop: context.eventLoop)
        case .body(let buffer):
            bodyBytes &+= buffer.readableBytes
            if bodyBytes > shared.configuration.maximumBodyBytes {
                pending?.keepAlive = false
                finish(context: context)
            }
        case .end:
            finish(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // A request still missing its end after this read gets a deadline; complete requests never pay for a timer.
        if awaitingEnd && deadline == nil && pending != nil {
            let loopBoundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
            let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: requestTimeout) {
                let handler = loopBoundSelf.value
                handler.deadline = nil
                guard handler.awaitingEnd else { return }
                handler.shared.metrics.timeouts.increment()
                handler.shared.logger.notice("request timed out before its end; answered and closing", metadata: ["peer": "\(handler.peerText)"])
                handler.pending?.keepAlive = false
                handler.finish(context: loopBoundContext.value)
            }
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Busy: a request is being read, or answers wait for presence checks.
        let busy = awaitingEnd || writes != nil
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, !busy {
            context.close(promise: nil)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // Shutdown: an idle connection closes now, a busy one after its last answer (which says
            // "connection: close").
            quiescing = true
            if !busy { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        shared.logger.debug("connection error", metadata: ["peer": "\(peerText)", "error": "\(error)"])
        // A malformed or oversized request head gets a bodiless answer before the connection closes. Not after
        // the connection's last answer: the decoder also fails on input cut short by that answer's close (a body
        // that never came) or on bytes pipelined after it, and nothing may follow a "connection: close" answer.
        let status: Int? = switch error {
        case is HTTPParserError: 400
        case is ByteToMessageDecoderError.PayloadTooLargeError: 431
        default: nil
        }
        defer {
            awaitingEnd = false
            pending = nil
            later = nil
        }
        guard let status, !awaitingEnd, !closing else {
            closing = true
            context.close(promise: nil)
            return
        }
        let answer = Pending(status: status, headers: [], body: [], version: .http1_1, isHead: false, keepAlive: false,
                             started: 0, timed: false)
        if writes != nil {
            // After the answers still waiting for their checks, in order.
            enqueue(context.eventLoop.makeSucceededFuture(answer), context: context)
        } else {
            write(answer, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        deadline?.cancel()
        deadline = nil
        pending = nil
        later = nil
        context.fireChannelInactive()
    }

    // MARK: Answers

    private func finish(context: ChannelHandlerContext) {
        awaitingEnd = false
        deadline?.cancel()
        deadline = nil
        guard let response = pending else { return }
        pending = nil
        if let later {
            // Whatever happened to the request while it was read (a body too large, a timeout)
            // applies to the answer the check completes.
            self.later = nil
            let keepAlive = response.keepAlive
            enqueue(later.map { answer in
                var answer = answer
                answer.keepAlive = answer.keepAlive && keepAlive
                return answer
            }, context: context)
        } else if writes != nil {
            enqueue(context.eventLoop.makeSucceededFuture(response), context: context)
        } else {
            write(response, context: context)
        }
    }

    /// Writes `answer` once it is there and every answer before it is written.
    private func enqueue(_ answer: EventLoopFuture<Pending>, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let previous = writes ?? context.eventLoop.makeSucceededVoidFuture()
        let written = previous.flatMap { answer }.map { response in
            let (handler, context) = loopBound.value
            handler.write(response, context: context)
        }
        writes = written
        written.whenComplete { _ in
            let handler = loopBound.value.handler
            if handler.writes === written { handler.writes = nil }
        }
    }

    private func write(_ response: Pending, context: ChannelHandlerContext) {
        // Nothing after a "connection: close" answer (answers queued behind one are dropped).
        guard isActive, !closing else { return }
        let keepAlive = response.keepAlive && !quiescing
        var connection: (name: String, value: String)?
        if !keepAlive {
            connection = ("connection", "close")
        } else if response.version.major == 1 && response.version.minor == 0 {
            connection = ("connection", "keep-alive")
        }
        let bodyLength = response.isHead ? 0 : response.body.count
        var buffer = context.channel.allocator.buffer(capacity: 128 &+ bodyLength &+ response.headers.count &* 64)
        Self.writeHead(status: response.status, version: response.version, headers: response.headers,
                       connection: connection, bodyLength: response.body.count, into: &buffer)
        if bodyLength > 0 { buffer.writeBytes(response.body) }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            closing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
        }
        if response.timed {
            shared.metrics.duration.recordNanoseconds(Int64(NIODeadline.now().uptimeNanoseconds &- response.started))
        }
    }

    /// Serializes a response head: status line, headers (any with CR, LF or NUL dropped), Content-Length.
    static func writeHead(status: Int, version: HTTPVersion, headers: [(name: String, value: String)],
                          connection: (name: String, value: String)? = nil, bodyLength: Int, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(version.major == 1 && version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeStaticString(" ")
        buffer.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
        buffer.writeStaticString("\r\n")
        for header in headers where isFieldSafe(header.name) && isFieldSafe(header.value) {
            buffer.writeString(header.name)
            buffer.writeStaticString(": ")
            buffer.writeString(header.value)
            buffer.writeStaticString("\r\n")
        }
        if let connection {
            buffer.writeString(connection.name)
            buffer.writeStaticString(": ")
            buffer.writeString(connection.value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("content-length: ")
        buffer.writeString(String(bodyLength))
        buffer.writeStaticString("\r\n\r\n")
    }

    @inline(__always)
    static func isFieldSafe(_ text: String) -> Bool {
        !text.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }
    }

    /// The snapshot and health state to decide with. The handler holds the box until the store has a
    /// newer one, so the health view a decision reads stays valid while it decides.
    private func currentServing() -> ServingState? {
        let generation = shared.store.generation
        if generation != cachedGeneration {
            cached = shared.store.serving
            cachedGeneration = generation
        }
        return cached
    }

    /// An answer now, or one that waits for presence checks.
    private enum Answer {
        case now(SidecarResponse)
        case checking(EventLoopFuture<SidecarResponse>)
    }

    private func answer(_ head: HTTPRequestHead, eventLoop: any EventLoop) -> Pending {
        let started = NIODeadline.now().uptimeNanoseconds
        let route = shared.translator.route(uri: head.uri, mode: mode)
        shared.metrics.count(route.endpoint)
        requestTimeout = shared.configuration.requestTimeout.timeAmount
        let answer: Answer
        switch route.endpoint {
        case .healthz:
            answer = .now(SidecarResponse(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok\n".utf8)))
        case .readyz:
            let ready = shared.isReady
            answer = .now(SidecarResponse(status: ready ? 200 : 503, headers: [("Content-Type", "application/json")],
                                          body: Array(readinessBody(ready: ready).utf8)))
        case .metrics:
            let body = shared.metrics.exposition(store: shared.store, ready: shared.isReady, now: SnapshotStore.unixTime())
            answer = .now(SidecarResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: body))
        case .explain:
            answer = explainAnswer(uri: head.uri, headers: head.headers, eventLoop: eventLoop)
        case .notFound:
            answer = .now(SidecarResponse(status: 404, headers: [("Content-Type", "text/plain")], body: Array("not found\n".utf8)))
        case .extAuthz, .forwardAuth, .authRequest, .standalone:
            answer = decide(head, endpoint: route.endpoint, target: route.target, eventLoop: eventLoop)
            if route.endpoint == .extAuthz, let budget = head.headers.first(name: "x-envoy-expected-rq-timeout-ms"),
               let milliseconds = Int64(budget), milliseconds > 0 {
                // Never answer after Envoy stopped waiting: the remaining body gets at most its budget.
                requestTimeout = min(.milliseconds(milliseconds), requestTimeout)
            }
        }
        let keepAlive = head.isKeepAlive && !shared.lifecycle.isShuttingDown
        @Sendable func pending(_ response: SidecarResponse) -> Pending {
            Pending(status: response.status, headers: response.headers, body: response.body, version: head.version,
                    isHead: head.method == .HEAD, keepAlive: keepAlive, started: started, timed: route.endpoint.decides)
        }
        switch answer {
        case .now(let response):
            return pending(response)
        case .checking(let response):
            later = response.map(pending)
            return pending(SidecarResponse(status: 500))  // stands in until the check answers
        }
    }

    private func decide(_ head: HTTPRequestHead, endpoint: Endpoint, target: Substring, eventLoop: any EventLoop) -> Answer {
        let translator = shared.translator
        guard let serving = currentServing() else {
            shared.metrics.unavailable.increment()
            return .now(translator.unavailableResponse(endpoint: endpoint))
        }
        let loaded = serving.loaded
        guard let request = translator.checkRequest(endpoint: endpoint, method: head.method.rawValue, target: target,
                                                    headers: head.headers, peer: peer, resolver: loaded.resolver,
                                                    routeHeaders: loaded.routeHeaderNames) else {
            loaded.count(provider: -1, outcome: .invalid)
            shared.logger.debug("check request without the original request", metadata: ["peer": "\(peerText)", "endpoint": "\(endpoint.label)"])
            return .now(translator.invalidResponse(endpoint: endpoint))
        }
        let (decision, location) = translator.decide(request, snapshot: loaded.snapshot, health: serving.view, location: self.location)
        if decision.needsVerification {
            if let verified = shared.verifyFromCache(request, serving: serving, location: self.location) {
                return .now(shared.respond(to: verified, request: request, endpoint: endpoint, serving: serving, peer: peerText))
            }
            let shared = self.shared, peerText = self.peerText
            let promise = eventLoop.makePromise(of: SidecarResponse.self)
            promise.completeWithTask {
                let verified = await shared.verify(request, serving: serving)
                return shared.respond(to: verified, request: request, endpoint: endpoint, serving: serving, peer: peerText)
            }
            return .checking(promise.futureResult)
        }
        let verified = VerifiedDecision(unchecked: decision, location: location)
        return .now(shared.respond(to: verified, request: request, endpoint: endpoint, serving: serving, peer: peerText))
    }
    private func readinessBody(ready: Bool) -> String {
        let status = shared.store.status
        var fields: [String] = ["\"ready\":\(ready)"]
        fields.append("\"shutting_down\":\(shared.lifecycle.isShuttingDown)")
        if let loaded = shared.store.current {
            let snapshot = loaded.snapshot
            fields.append("\"snapshot\":{\"path\":\(JSON.string(snapshot.path)),\"checksum\":\"\(String(snapshot.checksum, radix: 16))\","
                + "\"created_at\":\(snapshot.createdAt),\"loaded_at\":\(Int64(loaded.loadedAt)),"
                + "\"prefixes_v4\":\(snapshot.prefixCounts.v4),\"prefixes_v6\":\(snapshot.prefixCounts.v6)}")
        } else {
            fields.append("\"snapshot\":null")
        }
        if let health = shared.store.serving?.health {
            fields.append("\"health\":{\"members\":\(health.records.count),\"down\":\(health.downCount),\"written_at_ms\":\(health.writtenAt)}")
        } else {
            fields.append("\"health\":null")
        }
        fields.append("\"reloads\":\(status.successes)")
        fields.append("\"reload_failures\":\(status.failures)")
        fields.append("\"last_reload_error\":\(status.lastError.map(JSON.string) ?? "null")")
        return "{" + fields.joined(separator: ",") + "}\n"
    }

    private func explainAnswer(uri: String, headers: HTTPHeaders, eventLoop: any EventLoop) -> Answer {
        let parameters = QueryString.parse(uri)
        guard let serving = currentServing() else {
            return .now(SidecarResponse(status: 503, headers: [("Content-Type", "text/plain")], body: Array("no snapshot loaded\n".utf8)))
        }
        let loaded = serving.loaded
        let client: IPAddress?
        if let text = parameters["client"] {
            client = IPAddress(text)
        } else {
            client = shared.translator.clientAddress(headers: headers, peer: peer, resolver: loaded.resolver)
        }
        var asked = CheckRequest(method: parameters["method"] ?? "GET", target: parameters["target"] ?? "/", client: client)
        for name in loaded.routeHeaderNames where headers.contains(name: name) {  // the explain request's own stand for the original's
            asked.headers[name] = headers[name]
        }
        let request = asked
        let json = parameters["format"] == "json"
        let translator = shared.translator
        @Sendable func explained(_ verified: VerifiedDecision) -> SidecarResponse {
            let checks = verified.checks.map(\.description)
            let text = verified.view(of: serving.view, memberCount: loaded.snapshot.policy.memberCount) { view in
                json ? translator.explanationJSON(request, snapshot: loaded.snapshot, health: view, checks: checks)
                     : translator.explanation(request, snapshot: loaded.snapshot, health: view, checks: checks)
            }
            return SidecarResponse(status: 200, headers: [("Content-Type", json ? "application/json" : "text/plain")],
                                   body: Array((text + "\n").utf8))
        }
        let (decision, location) = translator.decide(request, snapshot: loaded.snapshot, health: serving.view, location: self.location)
        guard decision.needsVerification else {
            return .now(explained(VerifiedDecision(unchecked: decision, location: location)))
        }
        let shared = self.shared
        let promise = eventLoop.makePromise(of: SidecarResponse.self)
        promise.completeWithTask { explained(await shared.verify(request, serving: serving)) }
        return .checking(promise.futureResult)
    }
}

extension SidecarContext {
    /// Decides `request` with presence checks: the decision of a `verify` route made good.
    func verify(_ request: CheckRequest, serving: ServingState) async -> VerifiedDecision {
        let snapshot = serving.loaded.snapshot
        return await presence.decide(health: serving.view, memberCount: snapshot.policy.memberCount,
                                     settings: snapshot.policy.presence) { view in
            let location = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
            defer { location.deallocate() }
            return decide(request, snapshot: snapshot, health: view, location: location)
        }
    }

    /// ``verify(_:serving:)`` when the presence cache holds every answer it needs: on the event
    /// loop, with its `location` buffer, without a task. nil when a check must be sent.
    func verifyFromCache(_ request: CheckRequest, serving: ServingState, location: UnsafeMutableRawBufferPointer) -> VerifiedDecision? {
        let snapshot = serving.loaded.snapshot
        return presence.decideFromCache(health: serving.view, memberCount: snapshot.policy.memberCount,
                                        settings: snapshot.policy.presence) { view in
            decide(request, snapshot: snapshot, health: view, location: location)
        }
    }

    /// One decision of `request` under `health`, with the chosen member's base URL.
    private func decide(_ request: CheckRequest, snapshot: Snapshot, health: HealthView,
                        location: UnsafeMutableRawBufferPointer) -> (decision: Decision, location: String?, mirror: String) {
        let (decision, url) = translator.decide(request, snapshot: snapshot, health: health, location: location)
        return (decision, url, snapshot.strings.string(decision.target))
    }

    /// The answer of `endpoint` to a decision, counted, explained when configured and logged.
    func respond(to verified: VerifiedDecision, request: CheckRequest, endpoint: Endpoint, serving: ServingState,
                 peer: String) -> SidecarResponse {
        let loaded = serving.loaded
        let decision = verified.decision
        var response = translator.response(to: decision, location: verified.location, endpoint: endpoint, target: request.target,
                                           snapshot: loaded.snapshot)
        loaded.count(provider: decision.attributes.provider, outcome: response.outcome)
        metrics.health.count(step: decision.step)
        if verified.fellBack { metrics.presence.fallbacks.increment() }
        if configuration.explain {
            let checks = verified.checks.map(\.description)
            let text = verified.view(of: serving.view, memberCount: loaded.snapshot.policy.memberCount) { view in
                translator.explanation(request, snapshot: loaded.snapshot, health: view, checks: checks)
            }
            response.headers.append((RequestTranslator.explainHeader, text))
        }
        logger.trace("decision", metadata: [
            "endpoint": "\(endpoint.label)", "peer": "\(peer)", "client": "\(request.client.map { "\($0)" } ?? "-")",
            "method": "\(request.method)", "target": "\(request.target)", "status": "\(response.status)",
            "outcome": "\(response.outcome.label)", "location": "\(verified.location ?? "-")", "step": "\(decision.step.name)",
            "checks": "\(verified.checks.map(\.description).joined(separator: " "))",
        ])
        return response
    }
}
