import ArgumentParser
import RedirectorCore

/// `redirector decide`: the full decision for one request, explained.
struct DecideCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Decide one request and explain it: action, status, Location, provider, region, prefix, ASN, route.")

    @OptionGroup var input: SnapshotOption

    @Option(name: .long, help: "Client address.")
    var client: String

    @Option(name: .long, help: "Request method.")
    var method = "GET"

    @Argument(help: "Raw request target: path and optional ?query.")
    var target: String

    @Flag(help: "Print JSON instead of key=value.")
    var json = false

    func run() throws {
        let table = try input.open()
        let explanation = table.explain(client: client, method: method, target: target)
        guard json else {
            print(explanation)
            return
        }
        let quote = TextEscaping.jsonString
        var fields = [
            "\"action\": \(quote(explanation.action))", "\"status\": \(explanation.status)",
            "\"location\": \(explanation.location.map(quote) ?? "null")",
            "\"provider\": \(quote(explanation.provider))", "\"region\": \(quote(explanation.region))",
            "\"prefix\": \(explanation.prefix.map { quote("\($0)") } ?? "null")", "\"asn\": \(explanation.asn)",
            "\"route\": \(quote(explanation.route))", "\"target\": \(quote(explanation.target))",
        ]
        fields.append("\"headers\": {" + explanation.headers.map { "\(quote($0.name)): \(quote($0.value))" }.joined(separator: ", ") + "}")
        print("{" + fields.joined(separator: ", ") + "}")
    }
}
