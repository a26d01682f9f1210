import RedirectorCore

/// Minimal JSON text helpers for the few JSON texts the sidecar writes by hand (the `/readyz` body and
/// JSON log lines), so it needs no Foundation encoder.
enum JSON {
    /// `text` as a JSON string literal, escaped by RedirectorCore's one JSON escaper.
    static func string(_ text: String) -> String { TextEscaping.jsonString(text) }
}
