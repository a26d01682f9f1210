import ArgumentParser
import RedirectorCore

/// `redirector inspect`: what a snapshot holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show a snapshot's size, matcher statistics, providers, routes and compile report.")

    @Argument(help: "The snapshot.")
    var snapshot: String

    func run() throws {
        let table = try openSnapshot(snapshot)
        let strings = table.strings
        print("snapshot \(table.path): format \(SnapshotFormat.version), \(table.byteCount) bytes, checksum \(String(table.checksum, radix: 16)), created \(table.createdAt)")
        let (v4, v6) = table.prefixCounts
        print("IPv4: \(v4) prefixes, \(table.ipv4.nodeCount) nodes, \(table.ipv4.leafCount) leaves")
        print("IPv6: \(v6) prefixes, \(table.ipv6.nodeCount) nodes, \(table.ipv6.leafCount) leaves")
        if v4 > 0 {
            print("IPv4 matcher: \(table.ipv4.byteCount) bytes, \(String(format2: Double(table.ipv4.byteCount) / Double(v4))) bytes per prefix")
        }
        if v6 > 0 {
            print("IPv6 matcher: \(table.ipv6.byteCount) bytes, \(String(format2: Double(table.ipv6.byteCount) / Double(v6))) bytes per prefix")
        }
        if v4 + v6 > 0 {
            print("snapshot: \(String(format2: Double(table.byteCount) / Double(v4 + v6))) bytes per prefix (matchers, attributes, policy)")
        }
        print("attributes: \(table.attributeCount)")
        print("providers:")
        for (index, provider) in table.policy.providers.enumerated() {
            var line = "  [\(index)] \(strings.string(provider.name))\(provider.isActive ? "" : " (inactive)") priority=\(provider.priority)"
            if !provider.targets.registry.isEmpty { line += " registry=\(strings.string(provider.targets.registry))" }
            if !provider.targets.artifacts.isEmpty { line += " artifacts=\(strings.string(provider.targets.artifacts))" }
            if !provider.regionTargets.isEmpty { line += " regions=\(provider.regionTargets.count)" }
            print(line)
        }
        print("routes:")
        for (index, route) in table.policy.routes.enumerated() {
            print("  [\(index)] \(strings.string(route.name))")
        }
        print("report:")
        for line in table.report.split(separator: "\n") { print("  \(line)") }
    }
}

extension String {
    /// A number with two decimals.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
