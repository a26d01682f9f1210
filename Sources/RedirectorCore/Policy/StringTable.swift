/// A reference to a NUL-terminated UTF-8 string in a snapshot's string table.
///
/// Offset 0 is always the empty string. Equal strings are interned once, so two references to the
/// same text are equal and comparing references compares text.
public struct StringRef: Hashable, Sendable, BitwiseCopyable {
    /// Byte offset in the string table.
    public var offset: UInt32
    /// Length in bytes, without the terminating NUL.
    public var length: UInt32

    /// The empty string.
    public static let empty = StringRef(offset: 0, length: 0)

    /// Creates a reference (no validation; see ``StringTable/init(bytes:)``).
    public init(offset: UInt32, length: UInt32) {
        self.offset = offset
        self.length = length
    }

    /// Whether the string is empty.
    public var isEmpty: Bool { length == 0 }
}

/// Builds an interned string table.
public struct StringTableBuilder: Sendable {
    /// The table's bytes: NUL-terminated strings, starting with the empty string.
    public private(set) var bytes: [UInt8] = [0]
    private var interned: [String: StringRef] = ["": .empty]

    /// An empty table.
    public init() {}

    /// The reference of `text`, adding it on first use.
    public mutating func intern(_ text: String) -> StringRef {
        if let existing = interned[text] { return existing }
        let reference = StringRef(offset: UInt32(bytes.count), length: UInt32(text.utf8.count))
        bytes.append(contentsOf: text.utf8)
        bytes.append(0)
        interned[text] = reference
        return reference
    }
}

/// A validated, read-only string table over raw memory.
public struct StringTable: @unchecked Sendable {
    private let bytes: UnsafeRawBufferPointer
    private let base: UnsafeRawPointer

    /// Wraps the table's memory, which must start with the empty string and end with a NUL.
    ///
    /// Every string of a snapshot can reach a response header or a log line (targets, header
    /// values, provider and region names in NGINX variables and debug headers), so the table may
    /// hold no control byte other than the NUL terminators and no DEL: a snapshot that would let
    /// a CR or LF into a header is rejected whole.
    public init(bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress, bytes.count > 0, bytes[0] == 0, bytes[bytes.count - 1] == 0 else {
            throw ByteReader.OutOfBounds(description: "string table is not NUL-terminated")
        }
        for index in 0..<bytes.count where bytes[index] != 0 && ByteClass.isControl(bytes[index]) {
            throw ByteReader.OutOfBounds(description: "string table holds control byte 0x\(String(bytes[index], radix: 16)) at offset \(index)")
        }
        self.bytes = bytes
        self.base = base
    }

    /// Checks that `reference` names a whole NUL-terminated string of the table.
    public func validate(_ reference: StringRef, _ place: @autoclosure () -> String) throws -> StringRef {
        let end = Int(reference.offset) + Int(reference.length)
        guard end < bytes.count, bytes[end] == 0 else {
            throw ByteReader.OutOfBounds(description: "\(place()) names a string outside the string table")
        }
        for index in Int(reference.offset)..<end where bytes[index] == 0 {
            throw ByteReader.OutOfBounds(description: "\(place()) names a string with an embedded NUL")
        }
        return reference
    }

    /// The bytes of a validated reference.
    @inline(__always)
    public func bytes(_ reference: StringRef) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Int(reference.offset)..<Int(reference.offset + reference.length)])
    }

    /// A C string pointer to a validated reference; valid while the table's memory is.
    @inline(__always)
    public func cString(_ reference: StringRef) -> UnsafePointer<CChar> {
        (base + Int(reference.offset)).assumingMemoryBound(to: CChar.self)
    }

    /// The text of a validated reference.
    public func string(_ reference: StringRef) -> String {
        String(decoding: bytes(reference), as: UTF8.self)
    }
}
