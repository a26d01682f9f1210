import RedirectorCore
import Yams

/// kubernetes/k8s.io vendor ASN files (`registry.k8s.io/infra/meta/asns/*.yaml`):
/// `name`, optional `redirectsTo: {registry, artifacts}`, `asns: [int]`.
struct K8sASNImporter: SourceImporter {
    let format = "k8s-asns"
    let summary = "k8s.io vendor ASN YAML: name, redirectsTo {registry, artifacts}, asns"
    /// The vendor files come as a directory, one provider per file.
    let readsDirectories = true

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let node: Node?
        do {
            node = try Yams.compose(yaml: String(decoding: bytes, as: UTF8.self))
        } catch {
            throw ImportError(origin: name, message: "not valid YAML: \(error)")
        }
        guard let root = node?.mapping else { throw ImportError(origin: name, message: "expected a mapping at the top level") }
        guard let provider = root["name"]?.string, !provider.isEmpty else {
            throw ImportError(origin: name, message: "missing 'name'")
        }
        if let byte = SnapshotText.controlByte(in: provider) {
            throw ImportError(origin: name, message: "'name' contains control byte 0x\(String(byte, radix: 16))")
        }
        var data = ImportedData()
        if let redirects = root["redirectsTo"] {
            guard let mapping = redirects.mapping else {
                throw ImportError(origin: "\(name):\(redirects.mark.map { "\($0.line)" } ?? "?")", message: "'redirectsTo' must be a mapping")
            }
            data.hints.append(ProviderHint(provider: provider, registry: mapping["registry"]?.string, artifacts: mapping["artifacts"]?.string))
        }
        guard let asns = root["asns"]?.sequence else { throw ImportError(origin: name, message: "missing 'asns' list") }
        var seen = Set<UInt32>()
        for item in asns {
            let origin = "\(name):\(item.mark.map { "\($0.line)" } ?? "?")"
            guard let text = item.scalar?.string, let asn = UInt32(text), asn > 0 else {
                throw ImportError(origin: origin, message: "ASN '\(item.scalar?.string ?? "?")' is not a positive 32-bit number")
            }
            guard seen.insert(asn).inserted else {
                data.notes.append("\(origin): AS\(asn) listed again for \(provider); ignored")
                continue
            }
            data.asnClaims.append(ASNClaim(provider: provider, asn: asn, origin: origin))
        }
        return data
    }
}
