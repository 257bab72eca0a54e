import Contracts
import Foundation
import Synchronization

/// odds-service's copy of the platform status overlay (`FeedStatus` per feed), kept in memory:
/// loaded from Redis hash `odds:feed_status` at start, after a subscription reconnect and
/// periodically, and followed on channel `odds_feed_status_broadcast`. REST answers and
/// WebSocket snapshots read it; a change is pushed to subscribers by the hub.
///
/// The hash read and the channel can deliver the same change twice or an older state after a
/// newer one (a message published before the hash was read, handled after it): `since` only
/// moves forward per feed (the processor's contract), so an older state is ignored.
final class FeedStatusBoard: Sendable {
    enum Outcome: Equatable {
        /// Stored. `pushNeeded`: the state or its `since` changed, subscribers must hear of it.
        case updated(pushNeeded: Bool)
        /// The same status again.
        case unchanged
        /// Older than what is held (`since` before the held one): ignored.
        case stale
    }

    private let statuses = Mutex<[String: FeedStatus]>([:])
    /// Bumped after every stored change (inside the lock), so an answer rendered from the
    /// overlay can be reused while this has not moved (see `LiveOddsMirror.answerBody`).
    private let changes = Atomic<UInt64>(0)
    private let metrics: ServiceMetrics

    init(metrics: ServiceMetrics) {
        self.metrics = metrics
    }

    /// Every feed's status (feed id → status).
    var overlay: [String: FeedStatus] { statuses.withLock { $0 } }

    /// How many changes were stored so far. Read it before the overlay: an answer built from
    /// an overlay read afterwards is at least as new as this number says.
    var generation: UInt64 { changes.load(ordering: .acquiring) }

    func status(of feed: String) -> FeedStatus? { statuses.withLock { $0[feed] } }

    /// The rule, pure: what storing `new` over `current` means.
    static func outcome(current: FeedStatus?, new: FeedStatus) -> Outcome {
        guard let current else { return .updated(pushNeeded: true) }
        if new.since < current.since { return .stale }
        if new == current { return .unchanged }
        return .updated(pushNeeded: new.state != current.state || new.since != current.since)
    }

    @discardableResult
    func apply(_ status: FeedStatus) -> Outcome {
        let (outcome, previous) = statuses.withLock { statuses -> (Outcome, FeedStatus?) in
            let previous = statuses[status.feed]
            let outcome = Self.outcome(current: previous, new: status)
            if case .updated = outcome {
                statuses[status.feed] = status
                changes.add(1, ordering: .releasing)
            }
            return (outcome, previous)
        }
        if case .updated = outcome {
            metrics.feedStatus(status, stateChanged: previous?.state != status.state)
        }
        return outcome
    }
}
