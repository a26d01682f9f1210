import Foundation
import RedirectorCompiler
import Testing

/// The compiler's SHA-256 against the FIPS 180-4 examples and `sha256sum`.
@Suite struct SHA256DigestTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func digest(_ bytes: [UInt8], chunk: Int = .max) -> String {
        var hasher = SHA256Digest()
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + chunk)
            hasher.update(Array(bytes[start..<end]))
            start = end
        }
        return hex(hasher.finalize())
    }

    @Test func fipsExamples() {
        #expect(Self.digest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.digest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Self.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000), chunk: 4096)
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func everyLengthAroundTheBlockBoundariesAgreesWithSha256sum() throws {
        var generator = SystemRandomNumberGenerator()
        let fixture = try Fixture()
        let lengths = Array(0...130) + [191, 192, 193, 1000, 65_536, 100_003]
        for length in lengths {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let path = fixture.path("\(length).bin")
            try fixture.directory.write("\(length).bin", bytes: bytes)
            let expected = try ProvenanceTests.sha256sum(path)
            #expect(Self.digest(bytes) == expected, "length \(length)")
            // Chunking must not matter: pieces of 1, 7, 63 and 64 bytes give the same digest.
            for chunk in [1, 7, 63, 64] where length <= 1000 {
                #expect(Self.digest(bytes, chunk: chunk) == expected, "length \(length) in pieces of \(chunk)")
            }
        }
    }
}
