import Contracts

/// The liveness rule of one feed, without I/O: suspended when its ingest says it is not up, or
/// when no heartbeat arrived for `staleAfter`; reopened only after an `up` heartbeat *and* once
/// the read models hold everything Kafka had when it came (the caller checks that and calls
/// `caughtUp`), so markets come back with current prices.
struct FeedLiveness: Sendable {
    enum Decision: Sendable, Equatable {
        case none
        /// Store and announce this overlay.
        case store(FeedStatus)
        /// Reopen once the processors have applied what Kafka holds now.
        case reopenWhenCaughtUp
    }

    let feed: String
    let staleAfter: Duration
    private(set) var overlay: FeedStatus
    private var lastHeartbeat: ContinuousClock.Instant
    /// Wall time of the last heartbeat (the `since` of a heartbeat-missing suspension).
    private var lastHeartbeatWall: Timestamp
    private(set) var reopenPending = false

    /// - Parameters:
    ///   - stored: the overlay kept from before (PostgreSQL), if any: a processor that restarts
    ///     during an outage keeps the markets suspended.
    ///   - now: the start counts as a heartbeat, so a feed gets `staleAfter` to show up.
    init(feed: String, staleAfter: Duration, stored: FeedStatus?, now: ContinuousClock.Instant, wallNow: Timestamp) {
        self.feed = feed
        self.staleAfter = staleAfter
        overlay = stored ?? .open(feed: feed, since: wallNow)
        lastHeartbeat = now
        lastHeartbeatWall = wallNow
    }

    var isSuspended: Bool { overlay.isSuspended }
    /// Time since the last heartbeat.
    func heartbeatAge(at now: ContinuousClock.Instant) -> Duration { now - lastHeartbeat }

    mutating func observe(_ heartbeat: FeedHeartbeat, at now: ContinuousClock.Instant, wallNow: Timestamp) -> Decision {
        lastHeartbeat = now
        lastHeartbeatWall = wallNow
        switch heartbeat.state {
        case .up:
            guard overlay.isSuspended, !reopenPending else { return .none }
            reopenPending = true
            return .reopenWhenCaughtUp
        case .down, .recovering:
            reopenPending = false
            guard !overlay.isSuspended else { return .none }
            // Since the feed went down as ingest saw it (not since this processor heard of it).
            let since = later(min(heartbeat.since, wallNow))
            overlay = .suspended(feed: feed, detail: heartbeat.reason ?? heartbeat.state.rawValue, since: since)
            return .store(overlay)
        }
    }

    /// Suspends the feed when its heartbeats stopped.
    mutating func check(at now: ContinuousClock.Instant) -> Decision {
        guard now - lastHeartbeat > staleAfter else { return .none }
        reopenPending = false
        guard !overlay.isSuspended else { return .none }
        overlay = .suspended(feed: feed, detail: "heartbeat_missing", since: later(lastHeartbeatWall))
        return .store(overlay)
    }

    /// The read models caught up with what Kafka held at the `up` heartbeat.
    mutating func caughtUp(wallNow: Timestamp) -> Decision {
        guard reopenPending, overlay.isSuspended else { return .none }
        reopenPending = false
        overlay = .open(feed: feed, since: later(wallNow))
        return .store(overlay)
    }

    /// `candidate`, or just after the current state's start if that is later: readers order the
    /// states of a feed by `since` (a late message must not undo a newer state), so it never
    /// goes backwards, whatever the clocks of the ingest and processor hosts say.
    private func later(_ candidate: Timestamp) -> Timestamp {
        max(candidate, Timestamp(millisecondsSinceEpoch: overlay.since.millisecondsSinceEpoch + 1))
    }

    /// When the next heartbeat-missing check is due.
    func nextCheck() -> ContinuousClock.Instant { lastHeartbeat + staleAfter + .milliseconds(1) }
}
