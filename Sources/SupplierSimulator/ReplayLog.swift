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
    /// A ring: `storage[head]` is the oldest entry once the ring is full.
    private var storage: [Entry] = []
    private var head = 0

    init(capacity: Int, maxAge: Duration) {
        precondition(capacity > 0, "replay log capacity must be positive")
        self.capacity = capacity
        self.maxAge = maxAge
        storage.reserveCapacity(min(capacity, 65_536))
    }

    var count: Int { storage.count }
    /// Seq of the oldest frame kept; nil when empty.
    var firstSeq: UInt64? { storage.isEmpty ? nil : storage[head].seq }

    /// Appends the next stream frame (seqs must be consecutive), dropping the oldest past the
    /// capacity.
    mutating func append(seq: UInt64, frame: QueuedFrame, at time: ContinuousClock.Instant) {
        let entry = Entry(seq: seq, frame: frame, time: time)
        if storage.count < capacity {
            storage.append(entry)
        } else {
            storage[head] = entry
            head = (head + 1) % capacity
        }
    }

    /// Drops frames older than `maxAge` at `now`.
    mutating func expire(now: ContinuousClock.Instant) {
        guard let oldest = storage.isEmpty ? nil : storage[head], now - oldest.time > maxAge else { return }
        let kept = ordered.drop { now - $0.time > maxAge }
        storage = Array(kept)
        head = 0
    }

    /// The frames after `seq`, oldest first; nil when some of them are no longer kept.
    /// `latest` is the stream's newest seq (frames after it do not exist yet).
    func frames(after seq: UInt64, latest: UInt64) -> [QueuedFrame]? {
        guard seq < latest else { return [] }
        guard let first = firstSeq, first <= seq + 1 else { return nil }
        let skip = Int(seq + 1 - first)
        let all = ordered
        return all[all.index(all.startIndex, offsetBy: skip)...].map(\.frame)
    }

    private var ordered: [Entry] {
        storage.count < capacity || head == 0 ? storage : Array(storage[head...] + storage[..<head])
    }
}
