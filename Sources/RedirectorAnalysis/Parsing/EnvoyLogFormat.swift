/// Envoy access logs: the default format, or any Envoy format string given with `--log-format`.
///
/// Command operators analysis reads: `%START_TIME%`, `%REQ(:METHOD)%`,
/// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%` / `%REQ(:PATH)%`, `%RESPONSE_CODE%`, `%BYTES_SENT%`,
/// `%REQ(X-FORWARDED-FOR)%` and `%DOWNSTREAM_REMOTE_ADDRESS%` (with or without port). The default
/// format has no peer address: the client is the rightmost untrusted `X-Forwarded-For` entry, which is
/// the peer Envoy appended when it is the edge proxy (`use_remote_address: true`).
public struct EnvoyLogFormat: LogFormat {
    /// Envoy's default access log format (without its trailing newline).
    public static let defaultFormatString =
        #"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%""#

    /// Creates the format.
    public init() {}

    /// `envoy`.
    public let name = "envoy"
    /// One line of help.
    public let summary = "Envoy's default access log format, or an Envoy format string given with --log-format"

    /// Makes a parser for the format string (``defaultFormatString`` by default).
    public func makeParser(options: LogFormatOptions) throws -> any LogParser {
        let format = options.formatString ?? EnvoyLogFormat.defaultFormatString
        return FieldExtractorParser(try FieldExtractor(tokens: try EnvoyLogFormat.tokenize(format), unescapesTargets: false,
                                                       formatName: "envoy format"))
    }

    /// The field kind of a command operator (`REQ(:METHOD)`, `START_TIME` …), without its `%`s.
    public static func kind(ofCommand command: String, argument: String?) -> FieldKind {
        let upper = argument?.uppercased()
        switch command {
        case "START_TIME":
            return argument == nil ? .timeISO8601 : (argument == "%s" ? .timeEpoch : .ignored)
        case "REQ":
            switch upper {
            case ":METHOD": return .method
            case ":PATH", "X-ENVOY-ORIGINAL-PATH?:PATH": return .target
            case "X-FORWARDED-FOR": return .forwardedFor
            default: return .ignored
            }
        case "RESPONSE_CODE": return .status
        case "BYTES_SENT": return .bodyBytes
        case "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": return .peerWithPort
        case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": return .peer
        default: return .ignored
        }
    }

    /// Splits an Envoy format string into literals and command operators
    /// (`%NAME%`, `%NAME(argument)%`, `%NAME(argument):length%`). A trailing newline is dropped.
    /// A `%` that starts no operator is literal text.
    public static func tokenize(_ format: String) throws -> [FormatToken] {
        var text = format
        while text.hasSuffix("\n") || text.hasSuffix("\\n") {
            text.removeLast(text.hasSuffix("\n") ? 1 : 2)
        }
        let scalars = Array(text.unicodeScalars)
        var tokens: [FormatToken] = []
        var literal = ""
        var seen = Set<FieldKind>()
        var index = 0
        func isCommandCharacter(_ scalar: Unicode.Scalar) -> Bool {
            ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "_"
        }
        while index < scalars.count {
            guard scalars[index] == "%" else {
                literal.unicodeScalars.append(scalars[index])
                index += 1
                continue
            }
            var cursor = index + 1
            var command = ""
            while cursor < scalars.count && isCommandCharacter(scalars[cursor]) {
                command.unicodeScalars.append(scalars[cursor])
                cursor += 1
            }
            var argument: String?
            if !command.isEmpty && cursor < scalars.count && scalars[cursor] == "(" {
                var value = ""
                cursor += 1
                while cursor < scalars.count && scalars[cursor] != ")" {
                    value.unicodeScalars.append(scalars[cursor])
                    cursor += 1
                }
                cursor += 1
                argument = value
            }
            if cursor < scalars.count && scalars[cursor] == ":" {
                var digits = cursor + 1
                while digits < scalars.count && ("0"..."9").contains(scalars[digits]) { digits += 1 }
                if digits > cursor + 1 { cursor = digits }
            }
            guard !command.isEmpty, cursor < scalars.count, scalars[cursor] == "%" else {
                literal.append("%")
                index += 1
                continue
            }
            var kind = kind(ofCommand: command, argument: argument)
            if kind != .ignored {
                if seen.contains(kind) { kind = .ignored }
                seen.insert(kind)
            }
            let name = "%" + command + (argument.map { "(\($0))" } ?? "") + "%"
            tokens.append(field: kind, name: name, after: &literal)
            index = cursor + 1
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        return tokens
    }
}
