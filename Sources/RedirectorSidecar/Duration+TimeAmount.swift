import NIOCore

/// Configuration durations are Swift `Duration`s; NIO's timers and handlers take `TimeAmount`.
extension Duration {
    /// The duration as NIO's `TimeAmount` (nanosecond precision).
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
    }
}
