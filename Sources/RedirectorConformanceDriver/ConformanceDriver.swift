import ArgumentParser
import Glibc
import RedirectorCore

/// `redirector-conformance-driver`: the in-process core backend of the conformance harness: decides requests with `RedirectorCore` directly (client
/// address resolution with ``ClientAddressResolver``, then ``Snapshot/decide(client:method:target:location:)``),
/// one request per line on standard input, one answer per line on standard output.
///
/// Request lines are space-separated `key=hex` tokens (bytes hex-encoded, so any byte survives):
/// `id=`, `peer=` (TCP peer), `client=` (an already-resolved client: skips resolution), `method=`,
/// `target=`, `xff=` (repeatable, one per X-Forwarded-For header), `realip=`, `envoy=`
/// (x-envoy-external-address). Answers: `id= action= status= location= provider= region= prefix= asn=
/// route= client= ns= [header=]…` with text values hex-encoded; `ns` is the time of `decide` alone.
/// `bench N` decides every request received so far N times and answers `bench count= ns=`.
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

        while let line = readLine(strippingNewline: true) {
            if line.hasPrefix("bench ") {
                let rounds = max(0, Int(line.dropFirst(6)) ?? 0)
                var count = 0
                var sink = 0
                let start = Self.now()
                for _ in 0..<rounds {
                    for item in received {
                        let decision = Self.decide(table, item.client, item.request, location)
                        sink &+= Int(decision.status) &+ decision.locationLength
                        count += 1
                    }
                }
                let elapsed = Self.now() &- start
                LineProtocol.emit("bench count=\(count) ns=\(elapsed) sink=\(sink & 1)")
                continue
            }
            guard let request = LineProtocol.parse(line) else {
                LineProtocol.emit("error malformed request line")
                continue
            }
            let client = Self.resolve(request, resolver: resolver)
            let start = Self.now()
            var decision = Self.decide(table, client, request, location)
            let elapsed = Self.now() &- start
            received.append((client, request))
            var locationBytes: [UInt8] = []
            if decision.action == .redirect {
                if decision.locationLength > location.count {
                    // Longer than the scratch buffer: decide again into a buffer of the size needed.
                    let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: decision.locationLength, alignment: 8)
                    defer { larger.deallocate() }
                    decision = Self.decide(table, client, request, larger)
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
            fields.append("ns=\(elapsed)")
            if decision.action == .respond, let route, case .respond(_, let headers) = route.action {
                for header in headers {
                    fields.append("header=" + LineProtocol.hex("\(table.strings.string(header.name)): \(table.strings.string(header.value))"))
                }
            }
            LineProtocol.emit(fields.joined(separator: " "))
        }
    }

    /// Decides with the raw request bytes (the allocation-free hot path).
    @inline(never)
    static func decide(_ table: Snapshot, _ client: IPAddress?, _ request: Request,
                       _ location: UnsafeMutableRawBufferPointer) -> Decision {
        request.method.withUnsafeBytes { method in
            request.target.withUnsafeBytes { target in
                table.decide(client: client, method: method, target: target, location: location)
            }
        }
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
