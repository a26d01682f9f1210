import ArgumentParser
import RedirectorAnalysis
import RedirectorCore

/// How access logs are read and their requests prepared for deciding: the options `analyze` and
/// `diff --logs` share.
struct LogReadingOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Log format: \(LogFormats.all.map(\.name).joined(separator: ", ")).")
    var format = "combined"

    @Option(name: .customLong("log-format"),
            help: "Format string: an NGINX log_format (custom), an Envoy format string (envoy), or a CSV header row (gcs).")
    var logFormat: String?

    @Option(name: .customLong("trusted-proxy"), help: "Extra trusted proxy prefix for X-Forwarded-For resolution. Repeatable.")
    var trustedProxies: [String] = []

    @Option(name: .customLong("strip-path-prefix"), help: "Remove this prefix from targets before deciding (e.g. a bucket name in GCS logs).")
    var stripPathPrefix: String?

    /// The parser for `--format` / `--log-format`.
    func makeParser() throws -> any LogParser {
        do {
            return try LogFormats.parser(named: format, formatString: logFormat)
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }

    /// Analyzer options from `--trusted-proxy` and `--strip-path-prefix`.
    func analyzerOptions() throws -> AnalyzerOptions {
        do {
            return AnalyzerOptions(trustedProxies: try AnalyzerOptions.trustedProxies(trustedProxies), stripPathPrefix: stripPathPrefix)
        } catch {
            throw CommandFailure(description: "\(error)")
        }
    }
}
