/// Delays between reconnect attempts: exponential (minimum · 2^attempt), capped at `maximum`,
/// with "equal jitter" — a uniform pick in [ceiling/2, ceiling] — so a fleet of ingest
/// instances does not reconnect in lock-step after a supplier restart, and no delay is zero.
struct ReconnectBackoff: Sendable {
    let minimum: Duration
    let maximum: Duration
    private(set) var attempt = 0

    init(minimum: Duration, maximum: Duration) {
        precondition(minimum > .zero && maximum >= minimum, "backoff needs 0 < minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
    }

    /// The largest delay the next attempt can get.
    var ceiling: Duration {
        // Past 2^20 the cap has long been reached; stop doubling before Duration overflows.
        let factor = 1 << min(attempt, 20)
        return min(maximum, minimum * factor)
    }

    /// The delay before the next attempt, for a `unit` draw in [0, 1]; advances the attempt.
    mutating func nextDelay(unit: Double) -> Duration {
        let ceiling = self.ceiling
        attempt += 1
        return ceiling / 2 + (ceiling / 2) * min(1, max(0, unit))
    }

    mutating func nextDelay() -> Duration {
        nextDelay(unit: Double.random(in: 0...1))
    }

    /// A connection worked: start again from the minimum.
    mutating func reset() {
        attempt = 0
    }
}
