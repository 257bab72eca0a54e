import Contracts
import Synchronization

/// What ingest knows about its feed, as the heartbeats report it, without I/O: down until a
/// connection is live, recovering while a replay or snapshot is read and not yet acknowledged by
/// Kafka, up once live and everything read is in Kafka up to the recovery's position.
struct FeedHealth: Sendable, Equatable {
    enum Link: Sendable, Equatable {
        /// Never connected yet (or reading the resume position from Kafka).
        case starting
        case disconnected
        /// Connected, but nothing arrived for longer than the silence limit.
        case silent
        /// Connected; up once Kafka holds everything up to `target`.
        case recovering(target: FeedPosition)
        case live
    }

    private(set) var link = Link.starting
    /// When the reported state began.
    private(set) var since: Timestamp

    init(now: Timestamp) {
        since = now
    }

    /// The state a heartbeat reports now.
    var report: (state: FeedHeartbeat.State, reason: String?) {
        switch link {
        case .starting: (.down, "starting")
        case .disconnected: (.down, "supplier_disconnected")
        case .silent: (.down, "supplier_silent")
        case .recovering: (.recovering, "recovering")
        case .live: (.up, nil)
        }
    }

    /// A hello arrived: recovering until Kafka holds what the supplier had at connect.
    mutating func connected(at position: FeedPosition, now: Timestamp) {
        move(to: .recovering(target: position), now: now)
    }

    mutating func disconnected(now: Timestamp) {
        // A silent feed stays reported silent until a new connection says hello.
        if link != .silent { move(to: .disconnected, now: now) }
    }

    mutating func silent(now: Timestamp) {
        move(to: .silent, now: now)
    }

    /// Up once recovering and Kafka's claim reached the recovery target. True when it changed.
    @discardableResult
    mutating func acknowledged(through claim: FeedPosition?, now: Timestamp) -> Bool {
        guard case .recovering(let target) = link, let claim, claim >= target else { return false }
        move(to: .live, now: now)
        return true
    }

    private mutating func move(to next: Link, now: Timestamp) {
        let before = report.state
        link = next
        if report.state != before { since = now }
    }
}

/// The health shared by the feed reader (which moves it) and the heartbeat sender (which reports
/// it), with a signal so a change is reported at once.
final class FeedHealthBoard: Sendable {
    private struct Waiting {
        var changed = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextID: UInt64 = 0
    }

    private let health: Mutex<FeedHealth>
    private let waiting = Mutex(Waiting())

    init() {
        health = Mutex(FeedHealth(now: .now()))
    }

    var current: FeedHealth { health.withLock { $0 } }

    func update(_ change: (inout FeedHealth) -> Void) {
        let moved = health.withLock { health in
            let before = health
            change(&health)
            return health != before
        }
        guard moved else { return }
        let waiter = waiting.withLock { state in
            defer { state.waiter = nil }
            if state.waiter == nil { state.changed = true }
            return state.waiter?.continuation
        }
        waiter?.resume()
    }

    /// Returns after the next change (at once if one happened since the last wait), or at
    /// `deadline`. One waiter at a time (the heartbeat sender).
    func waitForChange(until deadline: ContinuousClock.Instant) async {
        let id: UInt64 = waiting.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let timer = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            let waiter = self.waiting.withLock { state -> CheckedContinuation<Void, Never>? in
                guard let current = state.waiter, current.id == id else { return nil }
                state.waiter = nil
                return current.continuation
            }
            waiter?.resume()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = waiting.withLock { state in
                if state.changed || ContinuousClock.now >= deadline {
                    state.changed = false
                    return true
                }
                state.waiter = (id, continuation)
                return false
            }
            if now { continuation.resume() }
        }
        timer.cancel()
    }
}
