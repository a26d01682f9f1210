import ArgumentParser
import Foundation
import RedirectorCore
import RedirectorHealth
import RedirectorPresence

/// `redirector decide`: the full decision for one request, explained.
struct DecideCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Decide one request and explain it: action, status, Location, provider, region, prefix, ASN, source, route.")

    @OptionGroup var input: SnapshotOption

    @Option(name: .long, help: "Client address.")
    var client: String

    @Option(name: .long, help: "Request method.")
    var method = "GET"

    @Argument(help: "Raw request target: path and optional ?query.")
    var target: String

    @Option(name: .customLong("header"), help: ArgumentHelp("A request header, 'Name: value' (repeatable).", valueName: "header"))
    var headers: [String] = []

    @Option(name: .long, help: "Decide with this health state file (written by `redirector probe`/`serve --probe`).")
    var health: String?

    @Flag(help: "Make the presence checks of a `verify` route (HEADs to the mirrors) and show each one.")
    var verify = false

    @Flag(help: "Print JSON instead of key=value.")
    var json = false

    func run() async throws {
        let table = try input.open()
        let requestHeaders = try headers.map { text in
            guard let colon = text.firstIndex(of: ":"), colon > text.startIndex else {
                throw ValidationError("--header '\(text)': expected 'Name: value'")
            }
            return (name: String(text[..<colon]), value: String(text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" }))
        }
        var state: HealthState?
        if let health {
            guard let bytes = FileManager.default.contents(atPath: health) else {
                throw ValidationError("--health \(health): cannot read the file")
            }
            do {
                state = try bytes.withUnsafeBytes {
                    try HealthState.decode($0, fingerprint: table.healthFingerprint, memberCount: table.policy.memberCount,
                                           now: Int64(Date().timeIntervalSince1970 * 1000))
                }
            } catch {
                // As every backend does: an unusable state means deciding without health, said once.
                printError("redirector decide: health state \(health): \(error) (deciding without health)")
            }
        }
        let health = state?.view ?? .allUp
        let address = IPAddress(client)
        var verified: VerifiedDecision?
        if verify {
            let client = HTTPProbeClient()
            verified = await PresenceChecker(client: client).decide(
                health: health, memberCount: table.policy.memberCount, settings: table.policy.presence
            ) { view in
                let (decision, location) = table.decide(client: address, method: method, target: target, headers: requestHeaders, health: view)
                return (decision, location, table.strings.string(decision.target))
            }
            await client.shutdown()
        } else if table.decide(client: address, method: method, target: target, headers: requestHeaders, health: health).decision.needsVerification {
            printError("redirector decide: route needs a presence check; decided without it (--verify makes it)")
        }
        var explanation = withExtendedLifetime(state) {
            let explain = { (view: HealthView) in
                table.explain(client: address, method: method, target: target, headers: requestHeaders, health: view)
            }
            return verified.map { $0.view(of: health, memberCount: table.policy.memberCount, explain) } ?? explain(health)
        }
        explanation.checks = verified?.checks.map(\.description) ?? []
        guard json else {
            print(explanation)
            return
        }
        let fields = explanation.jsonMembers.map { "\(TextEscaping.jsonString($0.key)): \($0.value)" }
        print("{" + fields.joined(separator: ", ") + "}")
    }
}
