import Contracts
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// Who follows which event. The subscriber loop hands each update to `deliver`, which encodes
/// the frame once and offers it to every subscriber of the event; an offer only queues (each
/// connection has its own writer), so one slow socket never holds up the others.
final class FanOutHub: Sendable {
    private struct State {
        var connections: [UInt64: WSConnection] = [:]
        /// event id → subscribers grouped by event loop; arrays are copy-on-write, so `deliver`
        /// takes a snapshot under the lock and iterates outside it.
        var subscribers: [String: [Bucket]] = [:]
        var nextId: UInt64 = 1
        var flushers: [ObjectIdentifier: EventLoopFlusher] = [:]
        /// event id → the feeds (`source`) of its markets, as seen in snapshots and deltas, for
        /// events with subscribers: who must hear of a feed status change.
        var eventFeeds: [String: Set<String>] = [:]
    }

    /// The subscribers of one event that live on one event loop (nil: no channel, tests).
    struct Bucket: Sendable {
        let flusher: EventLoopFlusher?
        var connections: [WSConnection]
    }

    private let state = Mutex(State())
    private let statusPushes = Mutex(())
    let limits: ServiceConfiguration.WebSocketLimits
    let metrics: ServiceMetrics
    /// The platform status overlay (feed suspensions).
    let board: FeedStatusBoard

    init(limits: ServiceConfiguration.WebSocketLimits, metrics: ServiceMetrics, board: FeedStatusBoard) {
        self.limits = limits
        self.metrics = metrics
        self.board = board
    }

    var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Registers a new connection, or nil when WS_MAX_CONNECTIONS are already open.
    func open(channel: (any Channel)?) -> WSConnection? {
        let connection: WSConnection? = state.withLock { state in
            guard state.connections.count < limits.maxConnections else { return nil }
            var flusher: EventLoopFlusher?
            if let channel {
                let key = ObjectIdentifier(channel.eventLoop)
                flusher = state.flushers[key] ?? EventLoopFlusher(eventLoop: channel.eventLoop)
                state.flushers[key] = flusher
            }
            let connection = WSConnection(id: state.nextId, channel: channel, flusher: flusher, limits: limits, metrics: metrics)
            state.nextId += 1
            state.connections[connection.id] = connection
            return connection
        }
        if connection != nil { metrics.connectionOpened() }
        return connection
    }

    /// Removes a connection and all its subscriptions.
    func remove(_ connection: WSConnection) {
        let removed = state.withLock { state -> Bool in
            guard state.connections.removeValue(forKey: connection.id) != nil else { return false }
            for eventId in connection.subscriptions { Self.detach(connection, from: eventId, in: &state) }
            return true
        }
        if removed { metrics.connectionClosed() }
    }

    /// Adds the connection to the subscriber lists; call after `WSConnection.subscribe` so the
    /// deltas that arrive from now on are held for the snapshot.
    func attach(_ connection: WSConnection, to eventIds: [String]) {
        state.withLock { state in
            guard state.connections[connection.id] != nil else { return }
            for eventId in eventIds {
                var buckets = state.subscribers[eventId] ?? []
                if buckets.contains(where: { $0.connections.contains { $0 === connection } }) { continue }
                if let index = buckets.firstIndex(where: { $0.flusher === connection.flusher }) {
                    buckets[index].connections.append(connection)
                } else {
                    buckets.append(Bucket(flusher: connection.flusher, connections: [connection]))
                }
                state.subscribers[eventId] = buckets
            }
        }
    }

    func detach(_ connection: WSConnection, from eventIds: [String]) {
        state.withLock { state in
            for eventId in eventIds { Self.detach(connection, from: eventId, in: &state) }
        }
    }

    private static func detach(_ connection: WSConnection, from eventId: String, in state: inout State) {
        guard var buckets = state.subscribers[eventId],
              let bucket = buckets.firstIndex(where: { $0.flusher === connection.flusher }),
              let index = buckets[bucket].connections.firstIndex(where: { $0 === connection }) else { return }
        buckets[bucket].connections.swapAt(index, buckets[bucket].connections.count - 1)
        buckets[bucket].connections.removeLast()
        if buckets[bucket].connections.isEmpty { buckets.remove(at: bucket) }
        state.subscribers[eventId] = buckets.isEmpty ? nil : buckets
        if buckets.isEmpty { state.eventFeeds.removeValue(forKey: eventId) }
    }

    /// Fans one applied update out to the event's subscribers: the frame is encoded once, and
    /// each event loop offers it to its own connections (in parallel across loops, then one
    /// flush per connection). Returns how many connections were offered it.
    ///
    /// `payloadJSON`: the update's own JSON as it arrived (the broadcast's `payload`), spliced
    /// into the frame instead of encoding the decoded value again.
    @discardableResult
    func deliver(_ update: OddsUpdate, payloadJSON: ArraySlice<UInt8>? = nil) -> Int {
        let (subscribers, newFeed) = state.withLock { state -> ([Bucket]?, Bool) in
            guard let buckets = state.subscribers[update.eventId] else { return (nil, false) }
            if state.eventFeeds[update.eventId]?.contains(update.source) == true { return (buckets, false) }
            state.eventFeeds[update.eventId, default: []].insert(update.source)
            return (buckets, true)
        }
        guard let buckets = subscribers else { return 0 }
        // A market of a feed that is down, first seen for this event: its subscribers hear of
        // the suspension before the odds frame (queued first, so written first).
        if newFeed, board.status(of: update.source)?.isSuspended == true {
            pushStatus(feed: update.source, only: update.eventId)
        }
        let bytes: ByteBuffer
        if let payloadJSON {
            bytes = ByteBuffer(bytes: Self.oddsFrame(eventId: update.eventId, payloadJSON: payloadJSON))
        } else {
            let message = ServerMessage.odds(eventId: update.eventId, payload: update)
            bytes = (try? ContractCoding.encoder.encode(message)).map { ByteBuffer(bytes: $0) } ?? ByteBuffer()
        }
        var offered = 0
        for bucket in buckets {
            let connections = bucket.connections
            offered += connections.count
            // One frame object per event loop: each subscriber holds a reference to it, and a
            // reference count shared by two cores would bounce its cache line on every frame.
            let frame = PendingFrame.odds(update, bytes: bytes)
            guard let flusher = bucket.flusher else {
                for connection in connections { connection.offer(update, frame: frame) }
                metrics.fannedOut(update, nowMs: Timestamp.now().millisecondsSinceEpoch)
                continue
            }
            let metrics = metrics
            flusher.eventLoop.execute {
                var written: [WSConnection] = []
                written.reserveCapacity(connections.count)
                var stale = 0
                for connection in connections {
                    switch connection.deliverOnLoop(update, frame: frame) {
                    case .sendNow: written.append(connection)
                    case .stale: stale += 1
                    default: break
                    }
                }
                flusher.flushSoon(written)
                // Tallied per event loop, not per frame: shared counters are contended atomics.
                metrics.framesSent(.odds, count: written.count)
                if stale > 0 { metrics.staleDropped(stale) }
                metrics.fannedOut(update, nowMs: Timestamp.now().millisecondsSinceEpoch)
            }
        }
        return offered
    }

    /// The `odds` frame text around an update's JSON: the bytes `ContractCoding.encoder` gives
    /// for `ServerMessage.odds` when `payloadJSON` is the update's canonical encoding.
    static func oddsFrame(eventId: String, payloadJSON: ArraySlice<UInt8>) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(payloadJSON.count + eventId.utf8.count + 40)
        frame.append(contentsOf: #"{"eventId":"#.utf8)
        JSONSpan.appendString(eventId, to: &frame)
        frame.append(contentsOf: #","payload":"#.utf8)
        frame.append(contentsOf: payloadJSON)
        frame.append(contentsOf: #","type":"odds"}"#.utf8)
        return frame
    }

    /// Records the feeds of an event's snapshot markets; returns every feed known for it (to
    /// read its status). Call before completing the snapshot (see `WSConnection.completeSnapshot`).
    func noteFeeds(of eventId: String, markets: [OddsUpdate]) -> Set<String> {
        state.withLock { state in
            var feeds = state.eventFeeds[eventId] ?? []
            for update in markets { feeds.insert(update.source) }
            // Only events with subscribers are tracked (an unsubscribed one is forgotten).
            if state.subscribers[eventId] != nil { state.eventFeeds[eventId] = feeds }
            return feeds
        }
    }

    /// The platform status of an event now, from the feeds known for it.
    func eventStatus(feeds: Set<String>) -> EventStatus? {
        EventStatus.of(feeds: feeds, overlay: board.overlay)
    }

    /// A feed's status changed: every subscriber of every event with a market of that feed is
    /// offered a `status` frame (one encoding per event; each connection queues it unless it
    /// already has that state or waits for the event's snapshot, which will carry it). Returns
    /// how many frames were queued. `only` limits it to one event.
    ///
    /// Pushes run one at a time and read the overlay inside: two changes racing (the channel
    /// and a reload) can never leave a connection told an older state after a newer one.
    @discardableResult
    func pushStatus(feed: String, only: String? = nil) -> Int {
        statusPushes.withLock { _ in pushStatusLocked(feed: feed, only: only) }
    }

    private func pushStatusLocked(feed: String, only: String?) -> Int {
        let targets = state.withLock { state -> [(eventId: String, feeds: Set<String>, buckets: [Bucket])] in
            var targets: [(eventId: String, feeds: Set<String>, buckets: [Bucket])] = []
            if let only {
                if let feeds = state.eventFeeds[only], feeds.contains(feed), let buckets = state.subscribers[only] {
                    targets.append((only, feeds, buckets))
                }
                return targets
            }
            for (eventId, feeds) in state.eventFeeds where feeds.contains(feed) {
                if let buckets = state.subscribers[eventId] { targets.append((eventId, feeds, buckets)) }
            }
            return targets
        }
        guard !targets.isEmpty else { return 0 }
        let overlay = board.overlay
        var queued = 0
        for target in targets {
            guard let status = EventStatus.of(feeds: target.feeds, overlay: overlay) else { continue }
            let frame = PendingFrame.status(eventId: target.eventId, status: status)
            for bucket in target.buckets {
                for connection in bucket.connections
                where connection.offerStatus(eventId: target.eventId, status: status, frame: frame) {
                    queued += 1
                }
            }
        }
        metrics.statusFramesQueued(queued)
        // The feed-loss-to-subscribers time of a change (not of an event discovered later).
        if queued > 0, only == nil, let status = overlay[feed], status.isSuspended {
            metrics.suspensionPushed(since: status.since, nowMs: Timestamp.now().millisecondsSinceEpoch)
        }
        return queued
    }

    /// Events with at least one subscriber (re-sync after a Redis reconnect).
    func subscribedEventIds() -> [String] {
        state.withLock { Array($0.subscribers.keys) }
    }

    func allConnections() -> [WSConnection] {
        state.withLock { Array($0.connections.values) }
    }
}
