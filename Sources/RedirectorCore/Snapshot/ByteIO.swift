/// Little-endian serialization into a growing byte array.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer.
    public init() {}

    /// Appends an integer, little-endian.
    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends raw bytes.
    public mutating func write(bytes more: some Sequence<UInt8>) {
        bytes.append(contentsOf: more)
    }

    /// Appends zeros until the length is a multiple of `alignment`.
    public mutating func align(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    /// Overwrites an integer at `offset` (which must already be written).
    public mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (index, byte) in raw.enumerated() { bytes[offset + index] = byte }
        }
    }
}

/// Bounds-checked little-endian reading; every read past the end throws instead of trapping.
public struct ByteReader {
    /// Why a read failed.
    public struct OutOfBounds: Error, CustomStringConvertible {
        /// What was being read.
        public let description: String
    }

    private let bytes: UnsafeRawBufferPointer
    /// The next offset to read.
    public private(set) var offset: Int
    /// What this reader reads, for error messages ("policy section").
    private let context: String

    /// A reader over `bytes`, starting at `offset`.
    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, context: String) {
        self.bytes = bytes
        self.offset = offset
        self.context = context
    }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { offset == bytes.count }

    /// Reads an integer, little-endian.
    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard offset >= 0, size <= bytes.count - offset else {
            throw OutOfBounds(description: "\(context) ends inside a \(size)-byte field at offset \(offset)")
        }
        let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += size
        return value
    }

    /// Reads `count` raw bytes.
    public mutating func read(bytes count: Int) throws -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, count <= bytes.count - offset else {
            throw OutOfBounds(description: "\(context) ends inside a \(count)-byte field at offset \(offset)")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    /// Reads a count and checks that at least `count * minimumElementSize` bytes remain, so a corrupt
    /// count cannot make the caller reserve or loop over more than the data holds.
    public mutating func readCount(minimumElementSize: Int) throws -> Int {
        let count = Int(try read(UInt32.self))
        guard count <= (bytes.count - offset) / max(minimumElementSize, 1) else {
            throw OutOfBounds(description: "\(context) claims \(count) entries at offset \(offset - 4), more than it holds")
        }
        return count
    }
}
