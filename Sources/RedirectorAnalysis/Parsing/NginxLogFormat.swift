/// NGINX access logs: the predefined `combined` format, or any `log_format` string (`custom`).
///
/// Variables analysis reads: `$remote_addr`, `$http_x_forwarded_for`, `$request` (or
/// `$request_method` with `$request_uri`, or `$uri`), `$status`, `$body_bytes_sent` (else
/// `$bytes_sent`), and one of `$time_local`, `$time_iso8601`, `$msec`. Every other variable is skipped.
/// Values NGINX escaped as `\xHH` are unescaped before deciding.
public struct NginxLogFormat: LogFormat {
    /// The format NGINX predefines as `combined`.
    public static let combinedFormatString =
        #"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#

    /// `--format combined`.
    public static let combined = NginxLogFormat(name: "combined", requiresFormatString: false,
        summary: "NGINX/Apache combined: $remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"")
    /// `--format custom --log-format '…'`.
    public static let custom = NginxLogFormat(name: "custom", requiresFormatString: true,
        summary: "any NGINX log_format string given with --log-format (variables such as $remote_addr, $request, $status, $body_bytes_sent, $time_local)")

    /// The `--format` name.
    public let name: String
    /// Whether `--log-format` must be given.
    public let requiresFormatString: Bool
    /// One line of help.
    public let summary: String

    /// Makes a parser for the format string (``combinedFormatString`` by default).
    public func makeParser(options: LogFormatOptions) throws -> any LogParser {
        guard options.formatString != nil || !requiresFormatString else {
            throw LogFormatError("--format \(name) needs --log-format '<nginx log_format string>'")
        }
        let format = options.formatString ?? NginxLogFormat.combinedFormatString
        return FieldExtractorParser(try FieldExtractor(tokens: try NginxLogFormat.tokenize(format), unescapesTargets: true,
                                                       formatName: "log_format"))
    }

    /// The field kind of an NGINX variable.
    public static func kind(ofVariable name: String) -> FieldKind {
        switch name {
        case "remote_addr": return .peer
        case "http_x_forwarded_for": return .forwardedFor
        case "request": return .requestLine
        case "request_method": return .method
        case "request_uri", "uri", "document_uri": return .target
        case "status": return .status
        case "body_bytes_sent": return .bodyBytes
        case "bytes_sent": return .totalBytes
        case "time_local": return .timeLocal
        case "time_iso8601": return .timeISO8601
        case "msec": return .timeEpoch
        default: return .ignored
        }
    }

    /// Splits a `log_format` string into literals and variables (`$name` or `${name}`).
    /// - Throws: ``LogFormatError`` for an unterminated `${`.
    public static func tokenize(_ format: String) throws -> [FormatToken] {
        var tokens: [FormatToken] = []
        var literal = ""
        let characters = Array(format.unicodeScalars)
        var index = 0
        func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
            scalar.properties.isASCIIHexDigit || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || scalar == "_"
        }
        var variables = Set<String>()
        var hasTarget = false
        var hasRequestURI = false
        while index < characters.count {
            let scalar = characters[index]
            guard scalar == "$" else {
                literal.unicodeScalars.append(scalar)
                index += 1
                continue
            }
            var name = ""
            var cursor = index + 1
            if cursor < characters.count && characters[cursor] == "{" {
                cursor += 1
                while cursor < characters.count && characters[cursor] != "}" {
                    name.unicodeScalars.append(characters[cursor])
                    cursor += 1
                }
                guard cursor < characters.count else { throw LogFormatError("log_format: unterminated ${ in '\(format)'") }
                cursor += 1
            } else {
                while cursor < characters.count && isNameCharacter(characters[cursor]) {
                    name.unicodeScalars.append(characters[cursor])
                    cursor += 1
                }
            }
            guard !name.isEmpty else {
                literal.append("$")
                index += 1
                continue
            }
            var kind = kind(ofVariable: name)
            // The raw request target wins over the normalized $uri, and each kind is read once.
            if kind == .target {
                if name == "request_uri" {
                    hasRequestURI = true
                } else if hasRequestURI || hasTarget {
                    kind = .ignored
                }
                hasTarget = true
            }
            if variables.contains(name) { kind = .ignored }
            variables.insert(name)
            tokens.append(field: kind, name: "$" + name, after: &literal)
            index = cursor
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        // $uri before $request_uri: keep only the raw one.
        if hasRequestURI {
            tokens = tokens.map { token in
                if case .field(.target, let name) = token, name != "$request_uri" { return .field(.ignored, name: name) }
                return token
            }
        }
        return tokens
    }
}
