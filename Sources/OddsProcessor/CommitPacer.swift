/// When the processor commits the offsets it stored after each batch.
///
/// A commit per batch cost a request and two librdkafka thread wake-ups per batch (at 1,000
/// updates/s, one per update). librdkafka's own timer would commit stored offsets at a fixed
/// interval, but it also wakes an idle processor every interval (0.6 % of a core at 100 ms).
/// So: while batches come, at most one commit per `interval`; when a poll comes back empty,
/// one commit of whatever is still uncommitted; nothing while idle. librdkafka's timer stays
/// as a slow backstop and commits before partitions are revoked or the consumer closes.
struct CommitPacer {
    let interval: Duration
    private var lastCommit: ContinuousClock.Instant?
    private var uncommitted = false

    init(interval: Duration) {
        self.interval = interval
    }

    /// A batch's offsets were stored at `now`: true when they should be committed now.
    mutating func stored(now: ContinuousClock.Instant) -> Bool {
        if let lastCommit, now - lastCommit < interval {
            uncommitted = true
            return false
        }
        lastCommit = now
        uncommitted = false
        return true
    }

    /// A poll returned nothing at `now`: true when stored offsets still wait for a commit.
    mutating func idle(now: ContinuousClock.Instant) -> Bool {
        guard uncommitted else { return false }
        lastCommit = now
        uncommitted = false
        return true
    }
}
