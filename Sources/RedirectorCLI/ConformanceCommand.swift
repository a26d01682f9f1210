import ArgumentParser
import Foundation
import RedirectorCore

/// `redirector conformance`: runs the conformance suite (Tests/Conformance) against every backend and
/// reports differences and speed. The harness is a Python package (`conformance`) that starts the real
/// servers; this command finds it and hands it the arguments. See docs/conformance.md.
struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run the conformance suite against every backend; report differences, latency and throughput.",
        discussion: """
            Everything after `conformance` goes to the harness (python3 -m conformance in Tests/Conformance): \
            `redirector conformance run --backends all --report out/conformance`, `… diff --count 2000`, \
            `… list`, `… --help`. Exits non-zero when any case fails or any backend disagrees. \
            Environment: REDIRECTOR_CONFORMANCE_DIR (the directory holding the `conformance` package), \
            REDIRECTOR_PYTHON (default python3). See docs/conformance.md.
            """,
        subcommands: [ConformanceHarnessCommand.self, ConformanceCoreCommand.self],
        defaultSubcommand: ConformanceHarnessCommand.self)
}

/// Hands the arguments to the Python harness (the default subcommand).
struct ConformanceHarnessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "harness",
        abstract: "Run the Python harness with these arguments (the default).",
        shouldDisplay: false)

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the harness (see `redirector conformance --help`).")
    var arguments: [String] = []

    func run() throws {
        let executable = ConformanceHarnessCommand.currentExecutable()
        guard let directory = ConformanceHarnessCommand.harnessDirectory(executable: executable) else {
            throw CommandFailure(description: """
                conformance: the harness (Tests/Conformance/conformance) was not found next to \(executable) \
                or the current directory; set REDIRECTOR_CONFORMANCE_DIR to the directory that holds it
                """)
        }
        let python = ProcessInfo.processInfo.environment["REDIRECTOR_PYTHON"] ?? "python3"
        let existing = ProcessInfo.processInfo.environment["PYTHONPATH"].map { ":" + $0 } ?? ""
        setenv("PYTHONPATH", directory + existing, 1)
        if ProcessInfo.processInfo.environment["REDIRECTOR_CLI"] == nil {
            setenv("REDIRECTOR_CLI", executable, 1)
        }
        let argv = [python, "-m", "conformance"] + arguments
        var cArguments = argv.map { strdup($0) }
        cArguments.append(nil)
        execvp(python, &cArguments)
        let reason = String(cString: strerror(errno))
        throw CommandFailure(description: "conformance: cannot run \(python): \(reason) (set REDIRECTOR_PYTHON)")
    }

    /// The absolute path of this executable.
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if length > 0 { return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments.first ?? "redirector"
    }

    /// REDIRECTOR_CONFORMANCE_DIR, else `Tests/Conformance` above the executable or the current directory.
    static func harnessDirectory(executable: String) -> String? {
        let fileManager = FileManager.default
        func holdsHarness(_ directory: String) -> Bool {
            fileManager.fileExists(atPath: directory + "/conformance/__main__.py")
        }
        if let directory = ProcessInfo.processInfo.environment["REDIRECTOR_CONFORMANCE_DIR"] {
            return holdsHarness(directory) ? directory : nil
        }
        for start in [URL(fileURLWithPath: executable).deletingLastPathComponent(),
                      URL(fileURLWithPath: fileManager.currentDirectoryPath)] {
            var directory = start.standardizedFileURL
            for _ in 0..<8 {
                let candidate = directory.appendingPathComponent("Tests/Conformance").path
                if holdsHarness(candidate) { return candidate }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        return nil
    }
}

/// The in-process core backend of the harness: decides requests with `RedirectorCore` directly (client
/// address resolution with ``ClientAddressResolver``, then ``Snapshot/decide(client:method:target:location:)``),
/// one request per line on standard input, one answer per line on standard output.
///
/// Request lines are space-separated `key=hex` tokens (bytes hex-encoded, so any byte survives):
/// `id=`, `peer=` (TCP peer), `client=` (an already-resolved client: skips resolution), `method=`,
/// `target=`, `xff=` (repeatable, one per X-Forwarded-For header), `realip=`, `envoy=`
/// (x-envoy-external-address). Answers: `id= action= status= location= provider= region= prefix= asn=
/// route= client= ns= [header=]…` with text values hex-encoded; `ns` is the time of `decide` alone.
/// `bench N` decides every request received so far N times and answers `bench count= ns=`.
struct ConformanceCoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "Decide requests from standard input in-process (the harness's core backend).",
        shouldDisplay: false)

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
        let table = try openSnapshot(snapshot)
        var trusted = table.policy.trustedProxies
        for text in trustedProxies {
            guard let prefix = IPPrefix(text) else { throw CommandFailure(description: "invalid trusted proxy '\(text)'") }
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
                Self.emit("bench count=\(count) ns=\(elapsed) sink=\(sink & 1)")
                continue
            }
            guard let request = Self.parse(line) else {
                Self.emit("error malformed request line")
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
            fields.append("location=" + Self.hex(locationBytes))
            fields.append("provider=" + Self.hex(table.providerName(decision.attributes.provider)))
            fields.append("region=" + Self.hex(table.strings.string(decision.attributes.region)))
            fields.append("prefix=" + Self.hex(decision.match.map { "\($0.prefix)" } ?? ""))
            fields.append("asn=\(decision.attributes.asn)")
            let routes = table.policy.routes
            let route = decision.route >= 0 && Int(decision.route) < routes.count ? routes[Int(decision.route)] : nil
            fields.append("route=" + Self.hex(route.map { table.strings.string($0.name) } ?? ""))
            fields.append("target=" + Self.hex(table.strings.string(decision.target)))
            fields.append("client=" + Self.hex(client.map { "\($0)" } ?? ""))
            fields.append("ns=\(elapsed)")
            if decision.action == .respond, let route, case .respond(_, let headers) = route.action {
                for header in headers {
                    fields.append("header=" + Self.hex("\(table.strings.string(header.name)): \(table.strings.string(header.value))"))
                }
            }
            Self.emit(fields.joined(separator: " "))
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

    static func parse(_ line: String) -> Request? {
        var request = Request()
        var envoy: String?
        var realIP: String?
        for token in line.split(separator: " ") {
            guard let equals = token.firstIndex(of: "=") else { return nil }
            let key = token[..<equals]
            let value = token[token.index(after: equals)...]
            if key == "id" {
                request.id = String(value)
                continue
            }
            guard let bytes = unhex(value) else { return nil }
            switch key {
            case "peer": request.peer = bytes
            case "client": request.client = bytes
            case "method": request.method = bytes
            case "target": request.target = bytes
            case "xff": request.forwardedFor.append(String(decoding: bytes, as: UTF8.self))
            case "realip": realIP = String(decoding: bytes, as: UTF8.self)
            case "envoy": envoy = String(decoding: bytes, as: UTF8.self)
            default: return nil
            }
        }
        request.realIP = envoy ?? realIP
        return request
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// Writes one unbuffered line to standard output (the harness waits for it).
    static func emit(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            offset += written
        }
    }

    static let digits = Array("0123456789abcdef".utf8)

    static func hex(_ text: String) -> String { hex(Array(text.utf8)) }

    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
