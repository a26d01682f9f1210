/// What changed between two snapshots, as an operator reviewing a data update reads it: prefixes
/// added, removed or given another owner or region; redirect destinations added and removed;
/// routes added, removed or changed. Providers and routes are compared by name (their indices
/// may differ between the two), prefixes exactly (a prefix removed may still be covered by a
/// shorter one: ``prefixes`` lists the table entries, not the addresses).
public struct SnapshotDiff: Sendable {
    /// Who a prefix belongs to in one snapshot.
    public struct Owner: Hashable, Sendable {
        /// Provider name, "" for none (an ASN-only entry).
        public var provider: String
        /// Region, "" when unknown.
        public var region: String
        /// Origin AS, 0 when unknown.
        public var asn: UInt32
    }

    /// A prefix whose owner differs between the snapshots.
    public struct PrefixChange: Sendable {
        /// The prefix.
        public var prefix: IPPrefix
        /// Its owner in the old snapshot, nil when it was not there.
        public var old: Owner?
        /// Its owner in the new snapshot, nil when it is not there.
        public var new: Owner?
    }

    /// The counts of one provider's prefix changes.
    public struct ProviderCounts: Hashable, Sendable {
        /// Provider name ("" for prefixes of no provider).
        public var provider: String
        /// Prefixes it gained: new in the table, or taken from another provider.
        public var added = 0
        /// Prefixes it lost: gone from the table, or given to another provider.
        public var removed = 0
        /// Prefixes it kept with another region (or AS).
        public var changed = 0

        /// Counts for `provider`.
        public init(provider: String, added: Int = 0, removed: Int = 0, changed: Int = 0) {
            (self.provider, self.added, self.removed, self.changed) = (provider, added, removed, changed)
        }
    }

    /// Every prefix whose owner, region or AS differs, in prefix order.
    public private(set) var prefixes: [PrefixChange] = []
    /// Origins (`scheme://host[:port]`) the new snapshot can redirect to and the old could not.
    public private(set) var addedDestinations: [String] = []
    /// Origins the old snapshot could redirect to and the new cannot.
    public private(set) var removedDestinations: [String] = []
    /// Routes only in the new snapshot, by name (`name#2` for the second route of a name, and so on).
    public private(set) var addedRoutes: [String] = []
    /// Routes only in the old snapshot, by name.
    public private(set) var removedRoutes: [String] = []
    /// Routes in both whose position, match or action differs.
    public private(set) var changedRoutes: [String] = []

    /// Compares `old` with `new`.
    public init(old: Snapshot, new: Snapshot) {
        // Both tables' entries come sorted: one merge walk per family, no hashing of half a million prefixes.
        var oldOwners = OwnerNames(old), newOwners = OwnerNames(new)
        for (before, after) in [(old.ipv4.visiblePrefixes(), new.ipv4.visiblePrefixes()),
                                (old.ipv6.visiblePrefixes(), new.ipv6.visiblePrefixes())] {
            var i = 0, j = 0
            while i < before.count || j < after.count {
                if j == after.count || (i < before.count && before[i].prefix < after[j].prefix) {
                    prefixes.append(PrefixChange(prefix: before[i].prefix, old: oldOwners.owner(before[i].value), new: nil))
                    i += 1
                } else if i == before.count || after[j].prefix < before[i].prefix {
                    prefixes.append(PrefixChange(prefix: after[j].prefix, old: nil, new: newOwners.owner(after[j].value)))
                    j += 1
                } else {
                    let was = oldOwners.owner(before[i].value), now = newOwners.owner(after[j].value)
                    if was != now { prefixes.append(PrefixChange(prefix: before[i].prefix, old: was, new: now)) }
                    i += 1
                    j += 1
                }
            }
        }
        prefixes.sort { $0.prefix < $1.prefix }

        let oldOrigins = Set(old.destinations().map(\.origin)), newOrigins = Set(new.destinations().map(\.origin))
        addedDestinations = newOrigins.subtracting(oldOrigins).sorted()
        removedDestinations = oldOrigins.subtracting(newOrigins).sorted()

        let oldRoutes = SnapshotDiff.routes(old), newRoutes = SnapshotDiff.routes(new)
        addedRoutes = newRoutes.map(\.key).filter { key in !oldRoutes.contains { $0.key == key } }
        removedRoutes = oldRoutes.map(\.key).filter { key in !newRoutes.contains { $0.key == key } }
        changedRoutes = newRoutes.filter { route in oldRoutes.contains { $0.key == route.key && $0 != route } }.map(\.key)
    }

    /// The prefix changes counted per provider, by name.
    public var providerCounts: [ProviderCounts] {
        var counts: [String: ProviderCounts] = [:]
        func bump(_ provider: String, _ change: (inout ProviderCounts) -> Void) {
            change(&counts[provider, default: ProviderCounts(provider: provider)])
        }
        for change in prefixes {
            switch (change.old, change.new) {
            case (nil, let new?): bump(new.provider) { $0.added += 1 }
            case (let old?, nil): bump(old.provider) { $0.removed += 1 }
            case (let old?, let new?) where old.provider != new.provider:
                bump(old.provider) { $0.removed += 1 }
                bump(new.provider) { $0.added += 1 }
            case (let old?, _): bump(old.provider) { $0.changed += 1 }
            case (nil, nil): break
            }
        }
        return counts.values.sorted { $0.provider < $1.provider }
    }

    /// Whether nothing changed.
    public var isEmpty: Bool {
        prefixes.isEmpty && addedDestinations.isEmpty && removedDestinations.isEmpty
            && addedRoutes.isEmpty && removedRoutes.isEmpty && changedRoutes.isEmpty
    }

    /// The owners of a snapshot's attribute entries, each decoded once: many prefixes share one.
    struct OwnerNames {
        let snapshot: Snapshot
        var decoded: [UInt32: Owner] = [:]

        init(_ snapshot: Snapshot) {
            self.snapshot = snapshot
        }

        /// The owner of attribute entry `index`.
        mutating func owner(_ index: UInt32) -> Owner {
            if let owner = decoded[index] { return owner }
            let attributes = snapshot.attributes(at: index)
            let owner = Owner(provider: snapshot.providerName(attributes.provider),
                              region: snapshot.strings.string(attributes.region), asn: attributes.asn)
            decoded[index] = owner
            return owner
        }
    }

    /// A route as it compares across snapshots: its position and everything it matches and does,
    /// with string references and indices resolved to names.
    struct RouteSignature: Equatable {
        /// The route's name, `#n` added for the n-th route of a name (n ≥ 2): names need not be unique.
        var key: String
        /// Its index in evaluation order.
        var position: Int
        /// Methods, path, clients, headers and action, names resolved.
        var rendering: String
    }

    /// The routes of `snapshot` as signatures.
    static func routes(_ snapshot: Snapshot) -> [RouteSignature] {
        let strings = snapshot.strings, policy = snapshot.policy
        func providers(_ list: [Int32]) -> String { list.map { snapshot.providerName($0) }.joined(separator: ",") }
        var seen: [String: Int] = [:]
        return policy.routes.enumerated().map { position, route in
            let methods = (route.methods.isNegated ? "not " : "") + route.methods.methods.map(strings.string).joined(separator: ",")
            var capture = 0
            let path = route.path.parts.map { part -> String in
                switch part {
                case .literal(let text): return strings.string(text)
                case .segment, .rest, .digest:
                    defer { capture += 1 }
                    let name = capture < route.path.captureNames.count ? route.path.captureNames[capture] : "?"
                    return part == .rest ? "{\(name)...}" : part == .digest ? "{\(name):digest}" : "{\(name)}"
                }
            }.joined()
            let clients: String
            switch route.clients {
            case .any: clients = "any"
            case .matched: clients = "matched"
            case .unmatched: clients = "unmatched"
            case .providers(let list): clients = "providers " + providers(list)
            case .exceptProviders(let list): clients = "except " + providers(list)
            }
            let headers = route.headers.map { condition -> String in
                let name = strings.string(condition.name)
                switch condition.match {
                case .present: return name
                case .exact(let value): return "\(name)=\(strings.string(value))"
                case .prefix(let value): return "\(name)^=\(strings.string(value))"
                }
            }.joined(separator: ",")
            let action: String
            switch route.action {
            case .pass: action = "pass"
            case .respond(let status, let list):
                action = "respond \(status) " + list.map { "\(strings.string($0.name)): \(strings.string($0.value))" }.joined(separator: "; ")
            case .redirect(let status, let target, let template, let keepQuery, let hashKey, let verify):
                let destination: String
                switch target {
                case .pool(let reference): destination = snapshot.describe(reference)
                case .provider(let targetClass, let fixed): destination = targetClass.name + (fixed.map { " of " + snapshot.providerName($0) } ?? "")
                }
                let parts = template.map { part -> String in
                    switch part {
                    case .literal(let text): return strings.string(text)
                    case .capture(let index): return "{\(index)}"
                    case .path: return "{path}"
                    }
                }.joined()
                action = "redirect \(status) \(destination) \(parts) query=\(keepQuery) hash=\(hashKey)" + (verify ? " verify" : "")
            }
            let name = strings.string(route.name)
            seen[name, default: 0] += 1
            return RouteSignature(key: seen[name] == 1 ? name : "\(name)#\(seen[name] ?? 0)", position: position,
                                  rendering: [methods, path, clients, headers, action].joined(separator: " | "))
        }
    }
}
