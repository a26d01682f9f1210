/// Byte searches eight bytes at a time (SWAR), for the scans every decision makes over the request
/// target. A byte loop costs four to five instructions per byte (bounds, compare, branch, index);
/// these cost about that per word. Each function has a byte-at-a-time definition beside it in the
/// tests, compared on seeded random targets.
enum WordScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The high bit of every zero byte of `word`, and possibly of bytes above a zero byte (a
    /// borrow): nonzero exactly when some byte is zero, and the lowest set bit is the first zero
    /// byte's in little-endian order.
    @inline(__always)
    static func zeroBytes(_ word: UInt64) -> UInt64 { (word &- ones) & ~word & highs }

    /// Nonzero exactly when some byte of `word` is below `limit` (at most 0x80), with the same
    /// lowest-set-bit property as ``zeroBytes(_:)``.
    @inline(__always)
    static func bytes(_ word: UInt64, below limit: UInt8) -> UInt64 { (word &- ones &* UInt64(limit)) & ~word & highs }

    /// Nonzero exactly when some byte of `word` is not ``ByteClass/isPathByte(_:)``: at most
    /// 0x20 (below 0x21), or DEL.
    @inline(__always)
    static func nonPathBytes(_ word: UInt64) -> UInt64 { bytes(word, below: 0x21) | zeroBytes(word ^ (ones &* 0x7f)) }

    /// The eight bytes at `offset` as a little-endian word.
    @inline(__always)
    static func word(_ base: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The index of the first byte equal to `byte` in `bytes[start...]`, or `bytes.count`.
    @inline(__always)
    static func firstIndex(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        let count = bytes.count
        guard let base = bytes.baseAddress, start < count else { return count }
        let pattern = ones &* UInt64(byte)
        var offset = start
        while offset &+ 8 <= count {
            let found = zeroBytes(word(base, offset) ^ pattern)
            if found != 0 { return offset &+ found.trailingZeroBitCount &>> 3 }
            offset &+= 8
        }
        guard offset < count else { return count }
        if count &- 8 >= start {
            // The last eight bytes, overlapping bytes already searched (which hold no match, so
            // the lowest set bit is still the first match).
            let found = zeroBytes(word(base, count &- 8) ^ pattern)
            return found == 0 ? count : count &- 8 &+ found.trailingZeroBitCount &>> 3
        }
        while offset < count && bytes[offset] != byte { offset &+= 1 }
        return offset
    }
}
