/// Capped exponential backoff with full jitter: attempt n waits a random time in
/// [0, min(cap, base · 2^n)], so many clients retrying a recovered dependency do not stampede.
public struct Backoff: Sendable {
    public var base: Duration
    public var cap: Duration
    public private(set) var attempt = 0

    public init(base: Duration = .milliseconds(100), cap: Duration = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The upper bound of the next delay (no jitter), for logs and tests.
    public var ceiling: Duration {
        let factor = Double(1 << min(attempt, 30))
        return min(cap, base * factor)
    }

    /// The delay before the next attempt; advances the attempt counter.
    public mutating func nextDelay<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let limit = ceiling
        attempt += 1
        let fraction = Double.random(in: 0...1, using: &generator)
        return limit * fraction
    }

    public mutating func nextDelay() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return nextDelay(using: &generator)
    }

    public mutating func reset() { attempt = 0 }
}
