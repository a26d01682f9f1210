/// The answer to one request, and why.
public struct Decision: Hashable, Sendable {
    /// What the host should do.
    public enum Action: Int32, Sendable {
        /// Serve the request as usual.
        case pass = 0
        /// Answer ``Decision/status`` with a `Location` header.
        case redirect = 1
        /// Answer ``Decision/status`` without a `Location` (e.g. 404, 405, 200).
        case respond = 2

        /// `pass`, `redirect` or `respond`.
        public var name: String {
            switch self {
            case .pass: return "pass"
            case .redirect: return "redirect"
            case .respond: return "respond"
            }
        }
    }

    /// What to do.
    public var action: Action
    /// HTTP status for redirects and responses, 0 for pass.
    public var status: Int32
    /// The attribute index of the client's longest matching prefix, nil when none covered it.
    /// (The prefix itself is for explanations: ``Snapshot/matchedPrefix(_:)``.)
    public var attributeIndex: UInt32?
    /// The matched prefix's attributes (provider -1 when none).
    public var attributes: MatchAttributes
    /// Index of the deciding route, -1 when none matched.
    public var route: Int32
    /// Base URL of the redirect target: the chosen member's (empty unless redirecting).
    public var target: StringRef
    /// The pool the member was chosen from (none unless redirecting).
    public var pool: PoolRef
    /// The chosen member's ``PoolMember/slot``, -1 unless redirecting.
    public var member: Int32
    /// Which step of the fallback chain gave the target; ``FallbackStep/pass`` when every
    /// candidate was down and the request passes.
    public var step: FallbackStep
    /// Length of the `Location` value; it was written only if it fit the buffer.
    public var locationLength: Int
    /// Whether the redirect may be answered only once a presence check found the object at the
    /// `Location` (a `verify` route). A backend that checks and finds it missing decides again
    /// with the member excluded (``HealthView/excluding(_:body:)``); one that cannot check must
    /// not serve such a snapshot.
    public var needsVerification: Bool = false

    /// A pass decision with no route.
    static func pass(_ attributeIndex: UInt32?, _ attributes: MatchAttributes) -> Decision {
        Decision(action: .pass, status: 0, attributeIndex: attributeIndex, attributes: attributes, route: -1, target: .empty,
                 pool: .none, member: -1, step: .none, locationLength: 0)
    }
}

/// A decision with its explanation in text, for the CLI, logs, tests and the sidecar's debug output.
public struct DecisionExplanation: Hashable, Sendable, CustomStringConvertible {
    /// `pass`, `redirect` or `respond`.
    public var action: String
    /// HTTP status, 0 for pass.
    public var status: Int
    /// The `Location` value, nil unless redirecting.
    public var location: String?
    /// Provider name, empty when none.
    public var provider: String
    /// Region, empty when unknown.
    public var region: String
    /// Matched prefix, nil when none.
    public var prefix: IPPrefix?
    /// ASN, 0 when unknown.
    public var asn: UInt32
    /// Name of the source that produced the matched prefix (``SourceProvenance/name``), empty
    /// when nothing matched or the snapshot records no provenance.
    public var source: String = ""
    /// Deciding route name, empty when none.
    public var route: String
    /// Target base URL, empty unless redirecting.
    public var target: String
    /// Extra response headers of a `respond` route.
    public var headers: [(name: String, value: String)]
    /// Name of the pool the target came from, empty for a pool of one URL or none.
    public var pool: String = ""
    /// The fallback step that gave the target (``FallbackStep/name``).
    public var step: FallbackStep = .none
    /// Members passed over, as `url (pool): reason`.
    public var skipped: [String] = []
    /// Presence checks made for a `verify` route, as `url(result,cached|latency)` (set by the backend that made them).
    public var checks: [String] = []

    public static func == (lhs: DecisionExplanation, rhs: DecisionExplanation) -> Bool {
        lhs.description == rhs.description
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(description)
    }

    /// The fields as JSON members: each key with its value already encoded (strings quoted,
    /// `null` for none), in a fixed order, for `decide --json` and the sidecar's `/explain`.
    public var jsonMembers: [(key: String, value: String)] {
        let quote = TextEscaping.jsonString
        return [
            ("action", quote(action)), ("status", "\(status)"), ("location", location.map(quote) ?? "null"),
            ("provider", quote(provider)), ("region", quote(region)), ("prefix", prefix.map { quote("\($0)") } ?? "null"),
            ("asn", "\(asn)"), ("source", source.isEmpty ? "null" : quote(source)), ("route", quote(route)), ("target", quote(target)), ("pool", quote(pool)),
            ("step", quote(step.name)), ("skipped", "[" + skipped.map(quote).joined(separator: ", ") + "]"),
            ("checks", "[" + checks.map(quote).joined(separator: ", ") + "]"),
            ("headers", "{" + headers.map { "\(quote($0.name)): \(quote($0.value))" }.joined(separator: ", ") + "}"),
        ]
    }

    /// `key=value` pairs on one line.
    public var description: String {
        var fields = ["action=\(action)", "status=\(status)"]
        if let location { fields.append("location=\(location)") }
        fields.append("provider=\(provider.isEmpty ? "-" : provider)")
        fields.append("region=\(region.isEmpty ? "-" : region)")
        fields.append("prefix=\(prefix.map { "\($0)" } ?? "-")")
        fields.append("asn=\(asn == 0 ? "-" : "\(asn)")")
        fields.append("source=\(source.isEmpty ? "-" : source)")
        fields.append("route=\(route.isEmpty ? "-" : route)")
        if !target.isEmpty { fields.append("target=\(target)") }
        if !pool.isEmpty { fields.append("pool=\(pool)") }
        if step != .none && step != .primary { fields.append("step=\(step.name)") }
        for skip in skipped { fields.append("skipped=\(skip)") }
        for check in checks { fields.append("check=\(check)") }
        for header in headers { fields.append("header=\(header.name): \(header.value)") }
        return fields.joined(separator: " ")
    }
}
