import ArgumentParser
import RedirectorCore

/// `redirector lookup`: longest-prefix match of addresses.
struct LookupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup",
        abstract: "Print the matched prefix, provider, region and ASN of addresses (arguments, or one per line on stdin).")

    @OptionGroup var input: SnapshotOption

    @Argument(help: "Addresses; read from standard input when none are given.")
    var addresses: [String] = []

    func run() throws {
        let table = try input.open()
        func answer(_ text: Substring) {
            guard let address = IPAddress(text) else {
                print("\(text)\tinvalid")
                return
            }
            guard let match = table.lookup(address) else {
                print("\(text)\t-\t-\t-\t-")
                return
            }
            let attributes = table.attributes(at: match.value)
            let provider = table.providerName(attributes.provider)
            let region = table.strings.string(attributes.region)
            print("\(text)\t\(match.prefix)\t\(provider.isEmpty ? "-" : provider)\t\(region.isEmpty ? "-" : region)\t\(attributes.asn == 0 ? "-" : "\(attributes.asn)")")
        }
        if addresses.isEmpty {
            while let line = readLine() {
                let trimmed = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).first
                if let trimmed { answer(trimmed) }
            }
        } else {
            for address in addresses { answer(Substring(address)) }
        }
    }
}
