import RedirectorCore
import Testing

/// XXH64 against the reference implementation (PyPI `xxhash` 3.x, which wraps Yann Collet's C code).
///
/// Expected values computed with, e.g.:
///   python3 -c "import xxhash; print(xxhash.xxh64(b'abc').hexdigest())"
///   python3 -c "import xxhash; print(xxhash.xxh64(bytes(range(33)), seed=1).hexdigest())"
///   python3 -c "import xxhash; print(xxhash.xxh64(bytes(range(256))*4 + b'xyz', seed=0x9E3779B97F4A7C15).hexdigest())"
@Suite struct XXHash64Tests {
    static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { XXHash64.hash($0, seed: seed) }
    }

    /// (input, seed 0, seed 1, seed 0x9E3779B97F4A7C15): lengths around every code path
    /// (< 4, 4–7, 8–31, exactly 32, 33, multiples of 32 and remainders, > 1 KiB).
    static let vectors: [([UInt8], UInt64, UInt64, UInt64)] = [
        ([], 0xef46db3751d8e999, 0xd5afba1336a3be4b, 0xc4349fc93c010000),
        (Array("a".utf8), 0xd24ec4f1a98c6e5b, 0xdec2bc81c3cd46c6, 0x9a7c6d2ea45568c9),
        (Array("abc".utf8), 0x44bc2cf5ad770999, 0xbea9ca8199328908, 0x2ed0f59d6b43ac8b),
        (Array("1234567".utf8), 0xd3a46e9108289359, 0x3a9b3211fb1bcbd2, 0x10f86bd1f2ed9f5f),
        (Array("12345678".utf8), 0xd2d02f08cf7cfd4a, 0x339c66ff536000b7, 0xea80ce45f8880be3),
        (Array("123456789012".utf8), 0xb5cee4c943d43c7e, 0xff1a346b725c8bd8, 0x1449393092a79cf4),
        (Array("Nobody inspects the spammish repetition".utf8), 0xfbcea83c8a378bf1, 0x43f425448d954db6, 0xeb8b157ca26cbf34),
        (Array(0..<31), 0xc346d2b59b4d8ee1, 0xf031031d65977dfc, 0xf3da6d05709c035d),
        (Array(0..<32), 0xcbf59c5116ff32b4, 0xd74e6766ce9dba94, 0xa1c89217e9d50750),
        (Array(0..<33), 0x0c535d1acafb8ead, 0xa371825f4210fe99, 0xe6a3c00cd6e74075),
        (Array(0..<63), 0xe26aa9e2a95f8e4f, 0x5264ec0719e10595, 0x26a0acd772de057e),
        (Array(0..<64), 0xf7c67301db6713f0, 0x3ce5bdf7575926c0, 0x2589245e62a1969b),
        (Array(0..<100), 0x6ac1e58032166597, 0x3d19a3a2098a7023, 0x3b97d91eba03e785),
        (Array(repeating: Array(0...255), count: 4).flatMap { $0 } + Array("xyz".utf8),
         0xe146cb31b65bc21a, 0x045e6446fcc80f3d, 0x86b7211d04e93c1f),
    ]

    @Test func knownVectors() {
        for (input, seed0, seed1, seedGolden) in XXHash64Tests.vectors {
            #expect(XXHash64Tests.hash(input) == seed0, "\(input.count) bytes, seed 0")
            #expect(XXHash64Tests.hash(input, seed: 1) == seed1, "\(input.count) bytes, seed 1")
            #expect(XXHash64Tests.hash(input, seed: 0x9E37_79B9_7F4A_7C15) == seedGolden, "\(input.count) bytes, golden seed")
        }
    }

    @Test func largeInputAndUnalignedSlice() {
        // python3 -c "import xxhash; b=bytes((i*31+7)&0xff for i in range(1000003)); print(xxhash.xxh64(b).hexdigest())"
        // python3 -c "import xxhash; b=bytes((i*31+7)&0xff for i in range(1000003)); print(xxhash.xxh64(b[5:5+4099]).hexdigest())"
        let bytes = (0..<1_000_003).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        #expect(XXHash64Tests.hash(bytes) == 0x857fbf0ff5d9fcfc)
        bytes.withUnsafeBytes { raw in
            #expect(XXHash64.hash(UnsafeRawBufferPointer(rebasing: raw[5..<(5 + 4099)])) == 0xed328f793bfb4cb1)
        }
    }

    @Test func alignmentDoesNotMatter() {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) }
        for offset in 0..<8 {
            for length in [0, 1, 3, 4, 7, 8, 31, 32, 33, 95, 200] {
                let copy = Array(bytes[offset..<(offset + length)])
                let fromSlice = bytes.withUnsafeBytes { XXHash64.hash(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + length)])) }
                #expect(fromSlice == XXHash64Tests.hash(copy), "offset \(offset), length \(length)")
            }
        }
    }

    @Test func everyByteMatters() {
        var bytes = (0..<97).map { UInt8(truncatingIfNeeded: $0) }
        let original = XXHash64Tests.hash(bytes)
        var seen = Set([original])
        for index in bytes.indices {
            bytes[index] ^= 0x01
            seen.insert(XXHash64Tests.hash(bytes))
            bytes[index] ^= 0x01
        }
        #expect(seen.count == bytes.count + 1)
        #expect(XXHash64Tests.hash(bytes) == original)
    }
}
