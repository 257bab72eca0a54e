import Contracts
import Hummingbird

/// One server frame waiting for a connection's writer. Everything but the kind lives in one
/// immutable, shared `Payload` object, so queueing a frame for 10,000 subscribers copies one
/// reference per subscriber (the bytes are encoded once per update).
struct PendingFrame: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case snapshot, odds, status, pong, heartbeat, error
    }

    final class Payload: Sendable {
        /// The JSON text framed for the socket (see `WireFrame`), shared by every subscriber;
        /// `bytes` is a view of its payload part, not a second copy.
        let wire: ByteBuffer
        let bytes: ByteBuffer
        /// The event a snapshot, odds or status frame belongs to (to purge on unsubscribe).
        let eventId: String?
        /// The market of an odds frame: the conflation key.
        let key: MarketKey?
        let version: Int64
        /// Supplier time of an odds frame.
        let updatedAt: Timestamp?

        init(bytes: ByteBuffer, eventId: String?, key: MarketKey?, version: Int64, updatedAt: Timestamp?) {
            wire = WireFrame.text(bytes)
            self.bytes = wire.getSlice(at: wire.readerIndex + wire.readableBytes - bytes.readableBytes,
                                       length: bytes.readableBytes) ?? bytes
            self.eventId = eventId
            self.key = key
            self.version = version
            self.updatedAt = updatedAt
        }
    }

    let kind: Kind
    let payload: Payload

    init(kind: Kind, bytes: ByteBuffer, eventId: String? = nil, key: MarketKey? = nil, version: Int64 = 0,
         updatedAt: Timestamp? = nil) {
        self.kind = kind
        payload = Payload(bytes: bytes, eventId: eventId, key: key, version: version, updatedAt: updatedAt)
    }

    var bytes: ByteBuffer { payload.bytes }
    var wire: ByteBuffer { payload.wire }
    var eventId: String? { payload.eventId }
    var key: MarketKey? { payload.key }
    var version: Int64 { payload.version }
    var updatedAt: Timestamp? { payload.updatedAt }

    static func control(_ kind: Kind, _ message: ServerMessage) -> PendingFrame {
        PendingFrame(kind: kind, bytes: ByteBuffer(string: message.jsonString()))
    }

    /// A `status` frame of one event (encoded once, shared by its subscribers).
    static func status(eventId: String, status: EventStatus) -> PendingFrame {
        PendingFrame(kind: .status, bytes: ByteBuffer(string: ServerMessage.status(eventId: eventId, status: status).jsonString()),
                     eventId: eventId)
    }

    static func odds(_ update: OddsUpdate, bytes: ByteBuffer) -> PendingFrame {
        PendingFrame(kind: .odds, bytes: bytes, eventId: update.eventId, key: update.marketKey,
                     version: update.version, updatedAt: update.updatedAt)
    }
}

/// A connection's bounded outbound queue with slow-consumer conflation. Pure (no I/O).
///
/// - Below `limit` pending frames every frame is kept in order (clients see every version).
/// - Reaching `limit` switches to conflation: pending odds frames are compacted to the newest
///   version per (event, market), and while conflating a new odds frame replaces the pending
///   one of its market in place (per-market order stays strictly increasing). Conflation ends
///   when the queue has drained to `limit / 2`.
/// - Status frames (an event's platform suspension or reopening) are never conflated away:
///   while conflating, a newer status frame of an event replaces its pending one in place
///   (the newest state per event is what counts), otherwise every one is kept.
/// - More than `hardLimit` live frames even after conflation means the client cannot keep up
///   at all: `push` answers `.overflow` and the caller closes the connection.
struct OutboundQueue {
    enum PushResult: Equatable {
        case queued
        /// The frame was queued and `dropped` older pending frames were conflated away.
        case conflated(dropped: Int)
        case overflow
    }

    let limit: Int
    let hardLimit: Int
    /// Ring-less FIFO: live part is `slots[head...]`; the consumed prefix is trimmed lazily.
    private var slots: [PendingFrame?] = []
    private var head = 0
    /// Sequence number of `slots[head]`.
    private var firstSequence = 0
    /// Sequence number of the newest pending odds frame of each market.
    private var newestOdds: [MarketKey: Int] = [:]
    /// Sequence number of the newest pending status frame of each event.
    private var newestStatus: [String: Int] = [:]
    private(set) var count = 0
    private(set) var isConflating = false

    init(limit: Int, hardLimit: Int) {
        self.limit = max(1, limit)
        self.hardLimit = max(self.limit, hardLimit)
    }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ frame: PendingFrame) -> PushResult {
        var dropped = 0
        if !isConflating && count >= limit {
            isConflating = true
            dropped += compact()
        }
        if isConflating, frame.kind == .odds, let key = frame.key, let sequence = newestOdds[key] {
            // Replace the pending older version of this market in place.
            slots[head + sequence - firstSequence] = frame
            return .conflated(dropped: dropped + 1)
        }
        if isConflating, frame.kind == .status, let eventId = frame.eventId, let sequence = newestStatus[eventId] {
            slots[head + sequence - firstSequence] = frame
            return .conflated(dropped: dropped + 1)
        }
        let sequence = firstSequence + slots.count - head
        slots.append(frame)
        count += 1
        if frame.kind == .odds, let key = frame.key { newestOdds[key] = sequence }
        if frame.kind == .status, let eventId = frame.eventId { newestStatus[eventId] = sequence }
        if count > hardLimit { return .overflow }
        return dropped > 0 ? .conflated(dropped: dropped) : .queued
    }

    /// Takes up to `max` frames in order.
    mutating func popBatch(max: Int) -> [PendingFrame] {
        var batch: [PendingFrame] = []
        while batch.count < max, head < slots.count {
            let slot = slots[head]
            slots[head] = nil
            head += 1
            let sequence = firstSequence
            firstSequence += 1
            guard let frame = slot else { continue }
            count -= 1
            if frame.kind == .odds, let key = frame.key, newestOdds[key] == sequence {
                newestOdds.removeValue(forKey: key)
            }
            if frame.kind == .status, let eventId = frame.eventId, newestStatus[eventId] == sequence {
                newestStatus.removeValue(forKey: eventId)
            }
            batch.append(frame)
        }
        if head == slots.count {
            slots.removeAll(keepingCapacity: slots.capacity <= 4 * limit)
            head = 0
        } else if head >= 64 && head * 2 >= slots.count {
            slots.removeFirst(head)
            head = 0
        }
        if isConflating && count <= limit / 2 { isConflating = false }
        return batch
    }

    /// Drops pending snapshot, odds and status frames of an event (after unsubscribe).
    mutating func removeAll(eventId: String) {
        for index in head..<slots.count {
            guard let frame = slots[index], frame.eventId == eventId else { continue }
            if let key = frame.key, newestOdds[key] == firstSequence + index - head { newestOdds.removeValue(forKey: key) }
            if frame.kind == .status, newestStatus[eventId] == firstSequence + index - head { newestStatus.removeValue(forKey: eventId) }
            slots[index] = nil
            count -= 1
        }
    }

    /// Keeps only the newest pending odds frame per market (status frames all stay); returns
    /// how many were dropped.
    private mutating func compact() -> Int {
        var dropped = 0
        for index in head..<slots.count {
            guard let frame = slots[index], frame.kind == .odds, let key = frame.key else { continue }
            if newestOdds[key] != firstSequence + index - head {
                slots[index] = nil
                count -= 1
                dropped += 1
            }
        }
        return dropped
    }
}

/// Inbound rate limit: `ratePerSecond` tokens per second, bursts up to `burst`. Pure.
struct TokenBucket {
    let ratePerSecond: Double
    let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    init(ratePerSecond: Int, burst: Int? = nil, now: ContinuousClock.Instant = .now) {
        self.ratePerSecond = Double(max(1, ratePerSecond))
        self.burst = Double(max(1, burst ?? ratePerSecond))
        tokens = self.burst
        last = now
    }

    mutating func take(now: ContinuousClock.Instant = .now) -> Bool {
        let elapsed = now - last
        last = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(burst, tokens + seconds * ratePerSecond)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
