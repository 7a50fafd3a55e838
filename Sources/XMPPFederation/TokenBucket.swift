import NIOCore

/// A token bucket: `rate` stanzas per second on average, bursts up to `burst`. Time is passed in.
public struct TokenBucket: Sendable {
    public var rate: Double
    public var burst: Double
    private var tokens: Double
    private var updated: NIODeadline

    public init(rate: Double, burst: Double, now: NIODeadline) {
        precondition(rate > 0 && burst >= 1)
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now
    }

    /// Takes one token; returns how long to wait before reading more when the bucket is empty
    /// (`nil` when there is no need to wait).
    public mutating func take(now: NIODeadline) -> TimeAmount? {
        let elapsed = Double((now - updated).nanoseconds) / 1e9
        tokens = min(burst, tokens + max(0, elapsed) * rate)
        updated = now
        tokens -= 1
        guard tokens < 0 else { return nil }
        return .nanoseconds(Int64((-tokens / rate) * 1e9))
    }
}
