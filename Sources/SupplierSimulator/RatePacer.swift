/// Turns a target rate into "how many frames now": frame k is due at k / rate seconds after the
/// start, and each tick emits every frame that has come due. Batching per tick keeps high rates
/// (50,000/s) accurate where one sleep per frame could not.
struct RatePacer: Sendable {
    let rate: Double
    /// Most frames one tick may emit: after a stall (a paused process, a busy machine) the feed
    /// skips ahead instead of bursting the backlog into the sockets.
    let maxBurst: Int
    private var start: Duration?
    private(set) var emitted: Int64 = 0

    init(rate: Double, maxBurst: Int? = nil) {
        precondition(rate > 0, "rate must be positive")
        self.rate = rate
        self.maxBurst = maxBurst ?? max(1, Int(rate / 10))
    }

    /// Frames due at `now` (any monotonic time) that have not been emitted yet.
    mutating func framesDue(now: Duration) -> Int {
        let origin = start ?? now
        start = origin
        let elapsed = Double((now - origin).components.seconds) + Double((now - origin).components.attoseconds) * 1e-18
        // The tolerance absorbs rounding: woken exactly at `nextDue`, that frame counts as due.
        let target = Int64((rate * elapsed + 1e-6).rounded(.down)) + 1
        var due = target - emitted
        if due > Int64(maxBurst) {
            emitted = target - Int64(maxBurst)
            due = Int64(maxBurst)
        }
        return Int(max(0, due))
    }

    /// When (on the same clock as `framesDue`) the next frame not yet emitted comes due; nil
    /// before the first call to `framesDue`. The feed loop sleeps until then instead of ticking.
    var nextDue: Duration? {
        guard let start else { return nil }
        let seconds = Double(emitted) / rate
        return start + .nanoseconds(Int64((seconds * 1e9).rounded(.up)))
    }

    mutating func record(emitted count: Int) {
        emitted += Int64(count)
    }

    /// Nobody is listening: the feed stops, and restarts from a fresh origin later.
    mutating func reset() {
        start = nil
        emitted = 0
    }
}

/// The "drop every connection every N seconds" fault: due once per period.
struct DisconnectSchedule: Sendable {
    let period: Duration?
    private var last: Duration?

    init(period: Duration?) {
        self.period = period
    }

    mutating func isDue(now: Duration) -> Bool {
        guard let period else { return false }
        guard let last else {
            self.last = now
            return false
        }
        guard now - last >= period else { return false }
        self.last = now
        return true
    }
}
