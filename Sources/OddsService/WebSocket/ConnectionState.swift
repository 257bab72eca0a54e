import Contracts

/// The per-connection subscription rules, pure and synchronous (unit-tested without sockets):
/// subscriptions and their limit, the per-(event, market) version guard, snapshot/delta
/// ordering, resume filtering and the bounded outbound queue.
///
/// Ordering argument: every odds frame and every market of a snapshot passes the version guard
/// (`sentVersions`), which only moves forward, and frames leave the queue in order; so for each
/// (event, market) a client sees strictly increasing versions. While an event's snapshot is
/// being read, its deltas are held in `pendingSnapshots` and folded into the snapshot when it
/// arrives, so a delta can never overtake (or duplicate) the snapshot.
///
/// Platform status (feed suspension): while an event's snapshot is loading its status frames
/// are not queued: the snapshot, built under the same lock, carries the status of that moment.
/// After it, a status frame is queued only when it changes what this client was last told
/// (`lastStatus`; never told = open), so a client never sees the same state twice in a row.
struct ConnectionState {
    enum DeltaResult: Equatable {
        /// Nothing was pending and the caller may write now: the frame was not queued, the
        /// caller writes it (the version guard already counts it as sent).
        case sendNow
        case queued
        /// Held until the event's snapshot is queued.
        case buffered
        /// Not newer than what this client already has (or has queued).
        case stale
        case notSubscribed
        case conflated(dropped: Int)
        case overflow
    }

    enum StatusResult: Equatable {
        case queued
        case notSubscribed
        /// The event's snapshot is loading; it will carry the current status.
        case awaitingSnapshot
        /// The client already has this status.
        case unchanged
        case conflated(dropped: Int)
        case overflow
    }

    enum SubscribeError: Error, Equatable {
        case tooManySubscriptions(limit: Int)
    }

    let maxSubscriptions: Int
    private(set) var queue: OutboundQueue
    private(set) var subscriptions: Set<String> = []
    /// Highest version queued or sent per market: the version guard.
    private(set) var sentVersions: [MarketKey: Int64] = [:]
    /// Deltas that arrived while the event's snapshot was loading (newest per market, bounded
    /// by the number of markets of the event).
    private var pendingSnapshots: [String: [String: (update: OddsUpdate, frame: PendingFrame)]] = [:]
    /// The platform status last queued (in a snapshot or a status frame) per event.
    private(set) var lastStatus: [String: EventStatus] = [:]

    init(maxSubscriptions: Int, queueLimit: Int, queueHardLimit: Int) {
        self.maxSubscriptions = maxSubscriptions
        queue = OutboundQueue(limit: queueLimit, hardLimit: queueHardLimit)
    }

    var subscriptionCount: Int { subscriptions.count }

    func isAwaitingSnapshot(_ eventId: String) -> Bool { pendingSnapshots[eventId] != nil }

    /// Starts subscriptions (all or nothing). `resume` (market → version the client has) applies
    /// to every event of the frame: only newer versions will be sent. Returns the events whose
    /// snapshot must now be read; until `completeSnapshot` their deltas are held back.
    mutating func subscribe(eventIds: [String], resume: [String: Int64]) -> Result<[String], SubscribeError> {
        let added = Set(eventIds).subtracting(subscriptions)
        guard subscriptions.count + added.count <= maxSubscriptions else {
            return .failure(.tooManySubscriptions(limit: maxSubscriptions))
        }
        for eventId in eventIds {
            subscriptions.insert(eventId)
            if pendingSnapshots[eventId] == nil { pendingSnapshots[eventId] = [:] }
            for (market, version) in resume {
                let key = MarketKey(eventId: eventId, market: market)
                sentVersions[key] = max(sentVersions[key] ?? 0, version)
            }
        }
        return .success(eventIds)
    }

    /// Queues the snapshot of `eventId`: the read model's markets merged with the deltas held
    /// meanwhile, newest per market, minus whatever the client already has. `encode` builds the
    /// frame. Nil when the event is no longer awaiting a snapshot (unsubscribed meanwhile).
    /// `status` gives the event's platform status now from the feeds of the snapshot's markets
    /// (nil: nothing known, open); `encode` gets the markets to send and that status (the
    /// frame carries it when suspended).
    mutating func completeSnapshot(
        eventId: String,
        markets: [OddsUpdate],
        status: (Set<String>) -> EventStatus? = { _ in nil },
        encode: ([OddsUpdate], EventStatus?) -> PendingFrame
    ) -> (markets: [OddsUpdate], result: OutboundQueue.PushResult)? {
        guard subscriptions.contains(eventId), let held = pendingSnapshots.removeValue(forKey: eventId) else { return nil }
        var newest: [String: OddsUpdate] = [:]
        for update in markets where update.eventId == eventId {
            if let existing = newest[update.market], existing.version >= update.version { continue }
            newest[update.market] = update
        }
        for (market, entry) in held {
            if let existing = newest[market], existing.version >= entry.update.version { continue }
            newest[market] = entry.update
        }
        var send: [OddsUpdate] = []
        for update in newest.values.sorted(by: { $0.market < $1.market }) {
            let key = update.marketKey
            if let sent = sentVersions[key], update.version <= sent { continue }
            sentVersions[key] = update.version
            send.append(update)
        }
        let current = status(Set(newest.values.map(\.source)))
        if let current { lastStatus[eventId] = current } else { lastStatus.removeValue(forKey: eventId) }
        return (send, queue.push(encode(send, current)))
    }

    /// Whether a client last told `told` must hear `status`: a suspension it does not have yet
    /// (or one with another `since`), or a reopening after a suspension it was told of.
    static func mustTell(_ status: EventStatus, told: EventStatus?) -> Bool {
        guard let told else { return status.isSuspended }
        if status.isSuspended { return !told.isSuspended || told.since != status.since }
        return told.isSuspended
    }

    /// A change of an event's platform status: queued (never conflated away, see
    /// `OutboundQueue`) unless the client is not subscribed, waits for the event's snapshot, or
    /// already has it.
    mutating func offerStatus(eventId: String, status: EventStatus, frame: PendingFrame) -> StatusResult {
        guard subscriptions.contains(eventId) else { return .notSubscribed }
        if pendingSnapshots[eventId] != nil { return .awaitingSnapshot }
        guard Self.mustTell(status, told: lastStatus[eventId]) else { return .unchanged }
        lastStatus[eventId] = status
        switch queue.push(frame) {
        case .queued: return .queued
        case .conflated(let dropped): return .conflated(dropped: dropped)
        case .overflow: return .overflow
        }
    }

    /// A live update from the channel (or a re-sync): queued if this client is subscribed and
    /// has not had this version or a newer one. With `canSendNow` (the socket takes writes)
    /// and nothing pending, the answer is `.sendNow` and the frame is not queued: the common
    /// case costs no queue traffic, and order holds because nothing older is waiting.
    mutating func offer(_ update: OddsUpdate, frame: PendingFrame, canSendNow: Bool = false) -> DeltaResult {
        let eventId = update.eventId
        guard subscriptions.contains(eventId) else { return .notSubscribed }
        if !pendingSnapshots.isEmpty, pendingSnapshots[eventId] != nil {
            if let held = pendingSnapshots[eventId]?[update.market], held.update.version >= update.version { return .stale }
            pendingSnapshots[eventId]?[update.market] = (update, frame)
            return .buffered
        }
        let key = frame.key ?? update.marketKey  // built once per update, not per subscriber
        // One hash lookup for the guard and its update (this runs once per frame per subscriber).
        if let index = sentVersions.index(forKey: key) {
            if update.version <= sentVersions.values[index] { return .stale }
            sentVersions.values[index] = update.version
        } else {
            sentVersions[key] = update.version
        }
        if canSendNow && queue.isEmpty { return .sendNow }
        switch queue.push(frame) {
        case .queued: return .queued
        case .conflated(let dropped): return .conflated(dropped: dropped)
        case .overflow: return .overflow
        }
    }

    /// Ends subscriptions; forgets their versions and drops their pending frames.
    /// Returns the events that were subscribed.
    mutating func unsubscribe(eventIds: [String]) -> [String] {
        var removed: [String] = []
        for eventId in eventIds where subscriptions.remove(eventId) != nil {
            removed.append(eventId)
            pendingSnapshots.removeValue(forKey: eventId)
            lastStatus.removeValue(forKey: eventId)
            queue.removeAll(eventId: eventId)
        }
        if !removed.isEmpty {
            let gone = Set(removed)
            sentVersions = sentVersions.filter { !gone.contains($0.key.eventId) }
        }
        return removed
    }

    mutating func enqueue(_ frame: PendingFrame) -> OutboundQueue.PushResult {
        queue.push(frame)
    }

    mutating func popBatch(max: Int) -> [PendingFrame] {
        queue.popBatch(max: max)
    }
}
