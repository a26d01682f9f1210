import Foundation
@testable import RedirectorCore
import Testing

/// The rendezvous score's logarithm, written in plain arithmetic so every platform agrees,
/// against libm's `log` as the oracle.
@Suite struct RendezvousTests {
    @Test func naturalLogMatchesLibmAcrossTheUnitInterval() {
        var generator = SeededGenerator(seed: 2026)
        var worst = 0.0
        var samples: [UInt64] = [0, 1, .max, .max >> 1, 1 << 11, (1 << 63) | 12345]
        for _ in 0..<200_000 { samples.append(generator.next()) }
        for bits in samples {
            let uniform = (Double(bits >> 11) + 0.5) * 0x1p-53
            let oracle = Foundation.log(uniform)
            let error = abs(PoolMember.naturalLog(ofFraction: bits) - oracle) / abs(oracle)
            worst = max(worst, error)
        }
        #expect(worst < 1e-9, "worst relative error \(worst)")
    }
}
