import Glibc
import Logging

/// Writes one JSON object per log record to standard error:
/// `{"ts":"2026-01-02T03:04:05.678Z","level":"info","logger":"redirector","msg":"…", …metadata}`.
public struct JSONLogHandler: LogHandler {
    /// The logger's label.
    public let label: String
    /// Minimum level.
    public var logLevel: Logger.Level
    /// Metadata added to every record.
    public var metadata: Logger.Metadata = [:]
    /// Metadata provider.
    public var metadataProvider: Logger.MetadataProvider?

    /// Creates a handler.
    public init(label: String, level: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    /// Metadata value by key.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Emits a record.
    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        if let error = event.error { merged["error"] = "\(error)" }
        var line = "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(event.level.rawValue)\",\"logger\":\(JSON.string(label)),\"msg\":\(JSON.string(event.message.description))"
        for key in merged.keys.sorted() where !["ts", "level", "logger", "msg"].contains(key) {
            line += ",\(JSON.string(key)):\(Self.value(merged[key] ?? .string("")))"
        }
        line += "}\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let written = write(2, base + offset, buffer.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    static func value(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return JSON.string(text)
        case .stringConvertible(let convertible): return JSON.string(convertible.description)
        case .array(let list): return "[" + list.map(Self.value).joined(separator: ",") + "]"
        case .dictionary(let dictionary):
            return "{" + dictionary.keys.sorted().map { "\(JSON.string($0)):\(Self.value(dictionary[$0] ?? .string("")))" }.joined(separator: ",") + "}"
        }
    }

    /// RFC 3339 UTC time with milliseconds.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
