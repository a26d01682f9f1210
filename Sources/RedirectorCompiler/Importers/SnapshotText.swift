import RedirectorCore

/// Text that goes into a snapshot's string table: the loader rejects control bytes (other than
/// the NUL terminators) and DEL, because every string can reach a response header or a log line.
enum SnapshotText {
    /// The first control byte or DEL in `text`, or nil.
    static func controlByte(in text: String) -> UInt8? {
        text.utf8.first(where: ByteClass.isControl)
    }

    /// `text` with control bytes shown as `\xNN`.
    static func escaped(_ text: String) -> String {
        text.unicodeScalars.map { $0.isASCII && ByteClass.isControl(UInt8($0.value)) ? TextEscaping.displayBytes([UInt8($0.value)]) : String($0) }.joined()
    }
}
