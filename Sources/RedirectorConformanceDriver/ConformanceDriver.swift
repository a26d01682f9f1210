import ArgumentParser
import Glibc
import RedirectorCore

/// `redirector-conformance-driver`: the in-process core backend of the conformance harness: decides requests with `RedirectorCore` directly (client
/// address resolution with ``ClientAddressResolver``, then
/// ``Snapshot/decide(client:method:target:headers:health:location:)``), one request per line on standard input, one
/// answer per line on standard output.
///
/// Request lines are space-separated `key=hex` tokens (bytes hex-encoded, so any byte survives):
/// `id=`, `peer=` (TCP peer), `client=` (an already-resolved client: skips resolution), `method=`,
/// `target=`, `xff=` (repeatable, one per X-Forwarded-For header), `realip=`, `envoy=`
/// (x-envoy-external-address), `header=<hex name>:<hex value>` (repeatable: the request headers route
/// conditions read), and for the presence-check rounds the harness runs as host `missing=<hex "slot,slot">` (members
/// found without the object, excluded as ``HealthView/excluding(_:memberCount:skippingVerifyingRoutes:_:)`` does) and
/// `exhausted=<hex "1">` (out of checks: routes that verify are skipped). Answers: `id= action= status= location=
/// provider= region= prefix= asn= route= target= client= pool= step= member= verify= skipped= ns= [header=]…` with text
/// values hex-encoded (`step` is the step's name, `-` for none; `member` the chosen member's slot, -1 for none; `verify`
/// 1 when the redirect needs its presence check; `skipped` the members passed over, `url(pool):reason` separated by
/// spaces); `ns` is the time of `decide` alone.
/// `bench N` decides every request received so far N times and answers `bench count= ns=`.
/// `health file=<hex path>` loads a health state file (``HealthState/decode(_:fingerprint:memberCount:now:)``) that
/// later decisions use, answering `health state=loaded down=N members=N`, or `health state=refused kind= reason=<hex>`
/// when the file cannot be used (decisions then have no health: every member up); `health` alone drops the state
/// (`health state=none`).
@main
struct ConformanceDriver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redirector-conformance-driver",
        abstract: "Decide requests from standard input in-process (the conformance harness's core backend).")

    @Option(name: .shortAndLong, help: "The snapshot.")
    var snapshot: String

    @Option(name: .customLong("trusted-proxy"), help: "Trusted proxy in addition to the snapshot's trustedProxies.")
    var trustedProxies: [String] = []

    struct Request {
        var id = ""
        var peer: [UInt8]?
        var client: [UInt8]?
        var method: [UInt8] = Array("GET".utf8)
        var target: [UInt8] = Array("/".utf8)
        var forwardedFor: [String] = []
        var realIP: String?
        /// Request headers, for the routes' header conditions.
        var headers: [([UInt8], [UInt8])] = []
        /// `headers` as ``RequestHeader``s (built once, before the first decision).
        var block: HeaderBlock?
        /// Members on which the harness's presence checks did not find the object.
        var missing: [UInt32] = []
        /// Whether the request is out of presence checks.
        var exhausted = false
    }

    /// Request headers as ``RequestHeader``s over memory this object owns (so that requests can be
    /// decided again, allocation-free, in `bench`).
    final class HeaderBlock {
        private let storage: UnsafeMutableRawBufferPointer
        private let fields: UnsafeMutableBufferPointer<RequestHeader>

        init(_ headers: [([UInt8], [UInt8])]) {
            let total = headers.reduce(0) { $0 + $1.0.count + $1.1.count }
            let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 1)
            let fields = UnsafeMutableBufferPointer<RequestHeader>.allocate(capacity: max(headers.count, 1))
            var offset = 0
            func place(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
                let slice = UnsafeMutableRawBufferPointer(rebasing: storage[offset..<(offset + bytes.count)])
                slice.copyBytes(from: bytes)
                offset += bytes.count
                return UnsafeRawBufferPointer(slice)
            }
            for (index, header) in headers.enumerated() {
                let name = place(header.0)
                let value = place(header.1)
                (fields.baseAddress! + index).initialize(to: RequestHeader(name: name, value: value))
            }
            self.storage = storage
            self.fields = fields
            view = UnsafeBufferPointer(start: fields.baseAddress, count: headers.count)
        }

        /// The headers.
        let view: UnsafeBufferPointer<RequestHeader>

        deinit {
            storage.deallocate()
            fields.deallocate()
        }
    }

    func run() throws {
        let table: Snapshot
        do {
            table = try Snapshot.open(path: snapshot)
        } catch {
            throw ValidationError("\(error)")
        }
        var trusted = table.policy.trustedProxies
        for text in trustedProxies {
            guard let prefix = IPPrefix(text) else { throw ValidationError("invalid trusted proxy '\(text)'") }
            trusted.append(prefix)
        }
        let resolver = ClientAddressResolver(trustedProxies: trusted)
        let location = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)
        defer { location.deallocate() }
        var received: [(client: IPAddress?, request: Request)] = []
        // The health state decisions use (nil: every member up). Held here: its view points into it.
        var health: HealthState?

        while let line = readLine(strippingNewline: true) {
            if line == "health" || line.hasPrefix("health ") {
                health = nil
                LineProtocol.emit(Self.loadHealth(String(line.dropFirst(6)), table: table, into: &health))
                continue
            }
            let view = health?.view ?? .allUp
            defer { withExtendedLifetime(health) {} }  // the view points into it
            if line.hasPrefix("bench ") {
                let rounds = max(0, Int(line.dropFirst(6)) ?? 0)
                var count = 0
                var sink = 0
                let start = Self.now()
                for _ in 0..<rounds {
                    for item in received {
                        let decision = Self.decide(table, item.client, item.request, view, location)
                        sink &+= Int(decision.status) &+ decision.locationLength
                        count += 1
                    }
                }
                let elapsed = Self.now() &- start
                LineProtocol.emit("bench count=\(count) ns=\(elapsed) sink=\(sink & 1)")
                continue
            }
            guard var request = LineProtocol.parse(line) else {
                LineProtocol.emit("error malformed request line")
                continue
            }
            if !request.headers.isEmpty { request.block = HeaderBlock(request.headers) }
            let client = Self.resolve(request, resolver: resolver)
            received.append((client, request))
            view.excluding(request.missing, memberCount: table.policy.memberCount, skippingVerifyingRoutes: request.exhausted) {
                Self.answer(table, client, request, $0, location)
            }
        }
    }

    /// Decides one request under `view` and writes its answer line.
    static func answer(_ table: Snapshot, _ client: IPAddress?, _ request: Request, _ view: HealthView,
                       _ location: UnsafeMutableRawBufferPointer) {
        let start = Self.now()
        var decision = Self.decide(table, client, request, view, location)
        let elapsed = Self.now() &- start
        var locationBytes: [UInt8] = []
        if decision.action == .redirect {
            if decision.locationLength > location.count {
                // Longer than the scratch buffer: decide again into a buffer of the size needed.
                let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: decision.locationLength, alignment: 8)
                defer { larger.deallocate() }
                decision = Self.decide(table, client, request, view, larger)
                locationBytes = Array(larger[..<min(decision.locationLength, larger.count)])
            } else {
                locationBytes = Array(location[..<decision.locationLength])
            }
        }
        var fields = ["id=\(request.id)", "action=\(decision.action.name)", "status=\(decision.status)"]
        fields.append("location=" + LineProtocol.hex(locationBytes))
        fields.append("provider=" + LineProtocol.hex(table.providerName(decision.attributes.provider)))
        fields.append("region=" + LineProtocol.hex(table.strings.string(decision.attributes.region)))
        fields.append("prefix=" + LineProtocol.hex(table.matchedPrefix(of: decision, client: client).map { "\($0)" } ?? ""))
        fields.append("asn=\(decision.attributes.asn)")
        let routes = table.policy.routes
        let route = decision.route >= 0 && Int(decision.route) < routes.count ? routes[Int(decision.route)] : nil
        fields.append("route=" + LineProtocol.hex(route.map { table.strings.string($0.name) } ?? ""))
        fields.append("target=" + LineProtocol.hex(table.strings.string(decision.target)))
        fields.append("client=" + LineProtocol.hex(client.map { "\($0)" } ?? ""))
        fields.append("pool=" + LineProtocol.hex(table.poolName(decision.pool)))
        fields.append("step=\(decision.step.name)")
        fields.append("member=\(decision.member)")
        fields.append("verify=\(decision.needsVerification ? 1 : 0)")
        fields.append("skipped=" + LineProtocol.hex(Self.skipped(table, client, request, view, location).joined(separator: " ")))
        fields.append("ns=\(elapsed)")
        if decision.action == .respond, let route, case .respond(_, let headers) = route.action {
            for header in headers {
                fields.append("header=" + LineProtocol.hex("\(table.strings.string(header.name)): \(table.strings.string(header.value))"))
            }
        }
        LineProtocol.emit(fields.joined(separator: " "))
    }

    /// Decides with the raw request bytes, headers and health (the allocation-free hot path).
    @inline(never)
    static func decide(_ table: Snapshot, _ client: IPAddress?, _ request: Request, _ health: HealthView,
                       _ location: UnsafeMutableRawBufferPointer) -> Decision {
        let headers = request.block?.view ?? UnsafeBufferPointer(start: nil, count: 0)
        return request.method.withUnsafeBytes { method in
            request.target.withUnsafeBytes { target in
                table.decide(client: client, method: method, target: target, headers: headers, health: health,
                             location: location)
            }
        }
    }

    /// The members the decision of `request` passed over, as `url(pool):reason` (the explanation's
    /// `skipped`): the same decision again, recording what it considered.
    static func skipped(_ table: Snapshot, _ client: IPAddress?, _ request: Request, _ health: HealthView,
                        _ scratch: UnsafeMutableRawBufferPointer) -> [String] {
        var trace = RecordedDecisionTrace()
        let headers = request.block?.view ?? UnsafeBufferPointer(start: nil, count: 0)
        _ = request.method.withUnsafeBytes { method in
            request.target.withUnsafeBytes { target in
                table.decide(client: client, method: method, target: target, headers: headers, health: health,
                             location: scratch, trace: &trace)
            }
        }
        return table.skipped(trace)
    }

    /// `health file=<hex path>`: loads the state file into `state` for `table`; "" (just `health`)
    /// leaves it empty. Returns the answer line.
    static func loadHealth(_ arguments: String, table: Snapshot, into state: inout HealthState?) -> String {
        var argument = Substring(arguments)
        while argument.first == " " { argument.removeFirst() }
        guard !argument.isEmpty else { return "health state=none" }
        guard argument.hasPrefix("file="), let bytes = LineProtocol.unhex(argument.dropFirst(5)) else {
            return "error malformed health line"
        }
        let path = String(decoding: bytes, as: UTF8.self)
        guard let data = readFile(path) else {
            return "health state=refused kind=unreadable reason=" + LineProtocol.hex("cannot read \(path) (errno \(errno))")
        }
        do {
            let loaded = try data.withUnsafeBytes {
                try HealthState.decode($0, fingerprint: table.healthFingerprint, memberCount: table.policy.memberCount,
                                       now: unixMilliseconds())
            }
            state = loaded
            return "health state=loaded down=\(loaded.downCount) members=\(loaded.records.count)"
        } catch let error as HealthStateError {
            return "health state=refused kind=\(error.kind.rawValue) reason=" + LineProtocol.hex(error.description)
        } catch {
            return "health state=refused kind=other reason=" + LineProtocol.hex("\(error)")
        }
    }

    /// The whole file at `path`, nil when it cannot be read (or is over 16 MiB).
    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if count == 0 { return out }
            out.append(contentsOf: chunk[0..<count])
            if out.count > 16 << 20 { return nil }
        }
    }

    /// Unix time, milliseconds.
    static func unixMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) &* 1000 &+ Int64(time.tv_nsec / 1_000_000)
    }

    /// The client address: `client` as given, else the peer resolved through the trusted proxies.
    static func resolve(_ request: Request, resolver: ClientAddressResolver) -> IPAddress? {
        if let client = request.client {
            return client.withUnsafeBytes { AddressParser.parseAddress($0) }
        }
        guard let peerBytes = request.peer,
              let peer = peerBytes.withUnsafeBytes({ AddressParser.parseAddress($0) }) else { return nil }
        return resolver.resolve(peer: peer, forwardedFor: request.forwardedFor, realIP: request.realIP)
    }

    /// Monotonic nanoseconds.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
