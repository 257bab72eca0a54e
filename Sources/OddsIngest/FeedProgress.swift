import Contracts
import Kafka
import Synchronization

/// How far Kafka is known to hold the feed, from delivery reports, without I/O. Every frame read
/// is an entry in read order; an entry is done when Kafka acknowledged it (or at once, for the
/// end of a snapshot, which has no message of its own). The claim is the position of the latest
/// entry with every entry before it done: at that moment Kafka holds every stream frame up to
/// it, or a complete snapshot taken after it.
struct ResumeTracker: Sendable {
    typealias Ticket = UInt64

    private struct Entry: Sendable {
        /// What becomes true once this entry and every earlier one is done (nil: no progress,
        /// e.g. one market of a snapshot).
        let claim: FeedPosition?
        var done: Bool
    }

    /// Everything at or before this position is in Kafka; nil when nothing is known.
    private(set) var claim: FeedPosition?
    private var entries: [Entry] = []
    /// Index in `entries` of the oldest entry not yet folded into `claim`.
    private var head = 0
    /// Ticket of `entries[0]`.
    private var base: Ticket = 0

    init(claim: FeedPosition?) {
        self.claim = claim
    }

    /// Entries read and not yet folded into the claim (at least one of them is not done). Bounded
    /// by what is read while the oldest unacknowledged frame waits: the in-flight window bounds
    /// the frames not done, and a frame is retried until delivered, so at most the feed rate
    /// times the delivery timeout (`KAFKA_DELIVERY_TIMEOUT_MS`) of 17-byte entries.
    var outstanding: Int { entries.count - head }

    mutating func add(claim: FeedPosition?, done: Bool = false) -> Ticket {
        entries.append(Entry(claim: claim, done: done))
        let ticket = base + Ticket(entries.count - 1)
        if done { advance() }
        return ticket
    }

    mutating func markDone(_ ticket: Ticket) {
        guard ticket >= base + Ticket(head) else { return }
        let index = Int(ticket - base)
        guard index < entries.count else { return }
        entries[index].done = true
        if index == head { advance() }
    }

    private mutating func advance() {
        while head < entries.count, entries[head].done {
            if let reached = entries[head].claim { claim = reached }
            head += 1
        }
        // Drop folded entries now and then, not on every step.
        if head >= 4_096 && head * 2 >= entries.count {
            entries.removeFirst(head)
            base += Ticket(head)
            head = 0
        }
    }
}

/// The tracker shared by the feed reader (which adds entries) and the publisher (which marks
/// them done from Kafka's delivery reports).
final class FeedProgress: Sendable {
    private let tracker: Mutex<ResumeTracker>

    init(claim: FeedPosition?) {
        tracker = Mutex(ResumeTracker(claim: claim))
    }

    var claim: FeedPosition? { tracker.withLock { $0.claim } }

    func reset(claim: FeedPosition?) {
        tracker.withLock { $0 = ResumeTracker(claim: claim) }
    }

    func add(claim: FeedPosition?, done: Bool = false) -> ResumeTracker.Ticket {
        tracker.withLock { $0.add(claim: claim, done: done) }
    }

    /// Returns the claim after it (it may have moved).
    @discardableResult
    func markDone(_ ticket: ResumeTracker.Ticket) -> FeedPosition? {
        tracker.withLock { tracker in
            tracker.markDone(ticket)
            return tracker.claim
        }
    }
}

/// Where a starting ingest resumes the feed: after the greatest claim found in the newest
/// messages of its topics.
enum ResumePoint {
    /// The greatest `feed-resume-after` claim among `messages`; nil when none carries one.
    static func greatestClaim(in messages: [KafkaConsumerMessage]) -> FeedPosition? {
        var best: FeedPosition?
        for message in messages {
            guard let value = message.headers.first(named: FeedHeaders.resumeAfter),
                  let claim = FeedPosition(text: String(decoding: value, as: UTF8.self)) else { continue }
            if best.map({ claim > $0 }) ?? true { best = claim }
        }
        return best
    }
}
