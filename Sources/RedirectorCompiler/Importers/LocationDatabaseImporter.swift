import Foundation
import RedirectorCore

/// The IPFire location database (`location.db`, Debian's `libloc-database`), read directly
/// (``LocationDatabase``). As an `asnTable` source it gives every network's prefix and ASN; as a
/// provider source `asns:` and/or `countries:` select the networks (both given: a network must
/// match both), and the prefixes cover exactly the addresses whose most specific network is
/// selected.
struct LocationDatabaseImporter: SourceImporter {
    let format = "location-db"
    let summary = "IPFire location database (libloc location.db): prefix, ASN, country; select with asns/countries"
    let selectsNetworks = true

    func parse(_ bytes: [UInt8], name: String, options: SourceOptions) throws -> ImportedData {
        let database = try LocationDatabase(bytes: bytes, name: name)
        if let asns = options.asns, asns.isEmpty {
            throw ImportError(origin: name, message: "'asns' is an empty list: it selects no network")
        }
        if let countries = options.countries {
            guard !countries.isEmpty else {
                throw ImportError(origin: name, message: "'countries' is an empty list: it selects no network")
            }
            let known = Set(database.countries.map(\.code))
            if let unknown = countries.sorted().first(where: { !known.contains($0) }) {
                throw ImportError(origin: name, message: "country '\(SnapshotText.escaped(unknown))' is not in the database's \(known.count) countries")
            }
        }
        var selector: ((LocationDatabase.Network) -> Bool)?
        if options.asns != nil || options.countries != nil {
            selector = { network in
                (options.asns?.contains(network.asn) ?? true) && (options.countries?.contains(network.country) ?? true)
            }
        }
        var data = ImportedData()
        data.prefixes.reserveCapacity(selector == nil ? database.networkCount + 1 : 1024)
        var index = 0
        var seenASNs = Set<UInt32>()
        try database.forEachNetwork(selected: selector) { prefix, network in
            // ASN 0 is kept: in an ASN table it tells that a nested network has no AS, where the
            // prefix around it has one (0 is the snapshot's "no ASN").
            data.prefixes.append(ImportedPrefix(prefix: prefix, provider: nil, region: options.region, asn: network.asn,
                                                origin: .record(file: name, kind: "prefix", index: index)))
            index += 1
            if options.asns != nil { seenASNs.insert(network.asn) }
        }
        let created = Date(timeIntervalSince1970: TimeInterval(database.createdAt))
        let date = created.formatted(.iso8601)
        data.publishedAt = database.createdAt
        data.publisherVersion = "\(SnapshotText.escaped(database.vendor)) \(date)"
        data.notes.append("\(name): location database by \(SnapshotText.escaped(database.vendor)), created \(date), \(SnapshotText.escaped(database.license)); \(database.networkCount) networks, \(database.asCount) AS, \(database.countries.count) countries; \(index) prefixes taken")
        for asn in (options.asns ?? []).sorted() where !seenASNs.contains(asn) {
            data.notes.append("\(name): AS\(asn) has no network in the location database")
        }
        return data
    }
}
