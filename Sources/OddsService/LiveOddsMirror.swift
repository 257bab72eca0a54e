import Contracts
import Redis
import Synchronization

/// What the mirror needs to know about the broadcast subscription that keeps it current.
protocol BroadcastLink: Sendable {
    /// The number of the live subscription; nil while it is down.
    var liveSubscription: UInt64? { get }
    /// Messages received from Redis and not yet handled by the pump (how far it is behind).
    var backlog: Int { get }
}

extension RedisSubscriber: BroadcastLink {
    var backlog: Int { bufferedEventCount }
}

/// odds-service's copy of the Redis hashes `odds:current:{event}` of the events it was asked
/// about, kept current by the broadcast channel, so a hot read does not cost a Redis round trip.
///
/// Why it is exact: the processor's Lua script writes the hash and publishes the update in one
/// atomic step, and pub/sub delivers in order on one connection. An event is loaded from Redis
/// only while the subscription is live, after announcing the load (`beginLoad`): every update
/// written after the read is then published after it and merged here (a newer version per
/// market wins, as in Redis), including updates handled while the read was in flight.
///
/// When it does not answer (`current` is nil, the caller reads Redis):
/// - the subscription is down, or it is a new one (a reconnect: messages may have been lost);
///   entries of an earlier subscription are never used again;
/// - the pump is behind by more than `maxBacklog` messages (the mirror would lag Redis);
/// - the event is not held (never asked, unknown to Redis, or dropped when the mirror was full).
final class LiveOddsMirror: Sendable {
    private struct Entry {
        /// The subscription during which the entry was loaded.
        var subscription: UInt64
        var markets: [String: OddsUpdate] = [:]
        /// Sorted by market, as readers return them; nil until asked after a change.
        var sorted: [OddsUpdate]?
        /// False until the first load finished (updates seen before are merged into it).
        var loaded = false
        var loadsInFlight = 0

        mutating func merge(_ update: OddsUpdate) {
            if let held = markets[update.market], held.version >= update.version { return }
            markets[update.market] = update
            sorted = nil
        }
    }

    struct LoadTicket: Sendable {
        let eventId: String
        let subscription: UInt64
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let link: any BroadcastLink
    private let capacity: Int
    private let maxBacklog: Int

    init(link: any BroadcastLink, capacity: Int = 20_000, maxBacklog: Int = 100) {
        precondition(capacity > 0, "capacity must be positive")
        self.link = link
        self.capacity = capacity
        self.maxBacklog = maxBacklog
    }

    /// The current odds of an event sorted by market, or nil when the mirror cannot vouch for
    /// them (see the type's comment).
    func current(_ eventId: String) -> [OddsUpdate]? {
        guard let live = link.liveSubscription, link.backlog <= maxBacklog else { return nil }
        return entries.withLock { entries -> [OddsUpdate]? in
            guard let entry = entries[eventId], entry.loaded, entry.subscription == live else { return nil }
            if let sorted = entry.sorted { return sorted }
            let sorted = entry.markets.values.sorted { $0.market < $1.market }
            entries[eventId]?.sorted = sorted
            return sorted
        }
    }

    /// Announces a Redis read of the event; from now on its broadcasts are kept for the entry.
    /// Nil while the subscription is down: read without the mirror.
    func beginLoad(_ eventId: String) -> LoadTicket? {
        guard let live = link.liveSubscription else { return nil }
        entries.withLock { entries in
            if entries[eventId]?.subscription == live {
                entries[eventId]?.loadsInFlight += 1
                return
            }
            // Bounded: start over when full (a dropped event only costs its next read a round trip).
            if entries.count >= capacity, entries[eventId] == nil { entries.removeAll(keepingCapacity: true) }
            entries[eventId] = Entry(subscription: live, loadsInFlight: 1)
        }
        return LoadTicket(eventId: eventId, subscription: live)
    }

    /// What Redis returned for an announced load. Kept only if the subscription that was live
    /// when the load began still is; an empty answer (Redis does not know the event) is not kept.
    func finishLoad(_ ticket: LoadTicket, with updates: [OddsUpdate]) {
        let stillLive = link.liveSubscription == ticket.subscription
        entries.withLock { entries in
            guard var entry = entries[ticket.eventId], entry.subscription == ticket.subscription else { return }
            entry.loadsInFlight -= 1
            if stillLive && !updates.isEmpty {
                for update in updates { entry.merge(update) }
                entry.loaded = true
            }
            if entry.loaded || entry.loadsInFlight > 0 {
                entries[ticket.eventId] = entry
            } else {
                entries.removeValue(forKey: ticket.eventId)
            }
        }
    }

    /// The read failed: the entry is forgotten unless it was already loaded.
    func cancelLoad(_ ticket: LoadTicket) {
        finishLoad(ticket, with: [])
    }

    /// An applied update from the broadcast channel (or a re-sync): merged into a held or
    /// loading entry of the live subscription; other events are not tracked.
    func apply(_ update: OddsUpdate) {
        guard let live = link.liveSubscription else { return }
        entries.withLock { entries in
            guard entries[update.eventId]?.subscription == live else { return }
            entries[update.eventId]?.merge(update)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}
