/// The supplier's bounded memory of its stream: the last `capacity` stream frames, none older than
/// `maxAge`. A client that resumes after a position still in it gets exactly the frames that
/// followed; anything older is answered with a snapshot. Plain value type, no I/O.
struct ReplayLog: Sendable {
    struct Entry: Sendable {
        let seq: UInt64
        let frame: QueuedFrame
        let time: ContinuousClock.Instant
    }

    let capacity: Int
    let maxAge: Duration
    /// A ring of up to `capacity` entries: the oldest at `head`, `count` of them in order.
    private var storage: [Entry] = []
    private var head = 0
    private(set) var count = 0

    init(capacity: Int, maxAge: Duration) {
        precondition(capacity > 0, "replay log capacity must be positive")
        self.capacity = capacity
        self.maxAge = maxAge
        storage.reserveCapacity(min(capacity, 65_536))
    }

    /// Seq of the oldest frame kept; nil when empty.
    var firstSeq: UInt64? { count == 0 ? nil : storage[head].seq }

    private func slot(_ offset: Int) -> Int { (head + offset) % storage.count }

    /// Appends the next stream frame (seqs must be consecutive), dropping the oldest past the
    /// capacity.
    mutating func append(seq: UInt64, frame: QueuedFrame, at time: ContinuousClock.Instant) {
        let entry = Entry(seq: seq, frame: frame, time: time)
        if storage.count < capacity && head == 0 && count == storage.count {
            // Still growing towards the capacity.
            storage.append(entry)
            count += 1
        } else if count < storage.count {
            storage[slot(count)] = entry
            count += 1
        } else if storage.count < capacity {
            // Full below the capacity after an expiry moved the head: straighten and grow (rare).
            storage = (0..<count).map { storage[slot($0)] } + [entry]
            head = 0
            count += 1
        } else {
            storage[head] = entry
            head = (head + 1) % storage.count
        }
    }

    /// Drops frames older than `maxAge` at `now` (from the oldest end: no copying).
    mutating func expire(now: ContinuousClock.Instant) {
        while count > 0, now - storage[head].time > maxAge {
            head = (head + 1) % storage.count
            count -= 1
        }
    }

    /// The frames after `seq`, oldest first; nil when some of them are no longer kept.
    /// `latest` is the stream's newest seq (frames after it do not exist yet).
    func frames(after seq: UInt64, latest: UInt64) -> [QueuedFrame]? {
        guard seq < latest else { return [] }
        guard let first = firstSeq, first <= seq + 1 else { return nil }
        let skip = Int(seq + 1 - first)
        var frames: [QueuedFrame] = []
        frames.reserveCapacity(count - skip)
        for offset in skip..<count { frames.append(storage[slot(offset)].frame) }
        return frames
    }
}
