import Contracts
import NIOCore
import Redis
import Synchronization

/// What the mirror needs to know about the broadcast subscription that keeps it current.
protocol BroadcastLink: Sendable {
    /// The number of the live subscription; nil while it is down.
    var liveSubscription: UInt64? { get }
    /// Events received from Redis and still queued for the pump. odds-service hands channel
    /// messages to the pump on the subscriber's reader thread (`RedisSubscriber.start(onMessage:)`),
    /// so they are applied as they are read and only control events queue; the bound still
    /// protects a consumer that takes messages through the sequence.
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
/// - more than `maxBacklog` events wait in the subscriber's queue (see `BroadcastLink.backlog`);
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
        /// Unique over the mirror's life, renewed by every change of `markets`: an answer
        /// rendered from one state is never stored into a later one (or into a new entry).
        var generation: UInt64
        /// The hot read's answer for `generation`, and the feed status overlay's generation it
        /// was rendered with.
        var answer: (overlayGeneration: UInt64, body: ByteBuffer)?

        init(subscription: UInt64, loadsInFlight: Int, generation: UInt64) {
            self.subscription = subscription
            self.loadsInFlight = loadsInFlight
            self.generation = generation
        }

        /// Keeps the update unless a newer version of its market is held; a change takes
        /// `generation`. True when it changed the markets.
        mutating func merge(_ update: OddsUpdate, generation: UInt64) -> Bool {
            if let held = markets[update.market], held.version >= update.version { return false }
            markets[update.market] = update
            sorted = nil
            answer = nil
            self.generation = generation
            return true
        }

        func isCurrent(in subscription: UInt64) -> Bool { loaded && self.subscription == subscription }

        mutating func sortedMarkets() -> [OddsUpdate] {
            if let sorted { return sorted }
            let sorted = markets.values.sorted { $0.market < $1.market }
            self.sorted = sorted
            return sorted
        }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var lastGeneration: UInt64 = 0

        mutating func nextGeneration() -> UInt64 {
            lastGeneration += 1
            return lastGeneration
        }

        /// Merges into the held entry in place (no copy of its markets).
        mutating func merge(_ update: OddsUpdate, into eventId: String) {
            if entries[eventId]?.merge(update, generation: lastGeneration + 1) == true { lastGeneration += 1 }
        }
    }

    struct LoadTicket: Sendable {
        let eventId: String
        let subscription: UInt64
    }

    private let state = Mutex(State())
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
        guard let live = vouchingSubscription() else { return nil }
        return state.withLock { state -> [OddsUpdate]? in
            guard state.entries[eventId]?.isCurrent(in: live) == true else { return nil }
            return state.entries[eventId]?.sortedMarkets()
        }
    }

    /// The hot read's body for an event: rendered by `render` (from the sorted markets) once per
    /// change of its markets or of the feed status overlay, then served as held. Nil when the
    /// mirror cannot vouch for the event (as `current`) or `render` gives nil.
    ///
    /// `overlayGeneration` is `FeedStatusBoard.generation` read before `render` reads the
    /// overlay, so a held body is never older than the overlay it is labelled with.
    func answerBody(_ eventId: String, overlayGeneration: UInt64, render: ([OddsUpdate]) -> ByteBuffer?) -> ByteBuffer? {
        enum Lookup {
            case unknown
            case held(ByteBuffer)
            case toRender([OddsUpdate], generation: UInt64)
        }
        guard let live = vouchingSubscription() else { return nil }
        let lookup = state.withLock { state -> Lookup in
            guard state.entries[eventId]?.isCurrent(in: live) == true else { return .unknown }
            if let answer = state.entries[eventId]?.answer, answer.overlayGeneration == overlayGeneration {
                return .held(answer.body)
            }
            guard let markets = state.entries[eventId]?.sortedMarkets(),
                  let generation = state.entries[eventId]?.generation else { return .unknown }
            return .toRender(markets, generation: generation)
        }
        switch lookup {
        case .unknown:
            return nil
        case .held(let body):
            return body
        case .toRender(let markets, let generation):
            // Rendered outside the lock; kept only if the markets did not change meanwhile.
            guard let body = render(markets) else { return nil }
            state.withLock { state in
                if state.entries[eventId]?.generation == generation {
                    state.entries[eventId]?.answer = (overlayGeneration, body)
                }
            }
            return body
        }
    }

    /// The live subscription when the mirror may answer from it: up, and the pump not behind.
    private func vouchingSubscription() -> UInt64? {
        guard let live = link.liveSubscription, link.backlog <= maxBacklog else { return nil }
        return live
    }

    /// Announces a Redis read of the event; from now on its broadcasts are kept for the entry.
    /// Nil while the subscription is down: read without the mirror.
    func beginLoad(_ eventId: String) -> LoadTicket? {
        guard let live = link.liveSubscription else { return nil }
        state.withLock { state in
            if state.entries[eventId]?.subscription == live {
                state.entries[eventId]?.loadsInFlight += 1
                return
            }
            // Bounded: start over when full (a dropped event only costs its next read a round trip).
            if state.entries.count >= capacity, state.entries[eventId] == nil { state.entries.removeAll(keepingCapacity: true) }
            state.entries[eventId] = Entry(subscription: live, loadsInFlight: 1, generation: state.nextGeneration())
        }
        return LoadTicket(eventId: eventId, subscription: live)
    }

    /// What Redis returned for an announced load. Kept only if the subscription that was live
    /// when the load began still is; an empty answer (Redis does not know the event) is not kept.
    func finishLoad(_ ticket: LoadTicket, with updates: [OddsUpdate]) {
        let stillLive = link.liveSubscription == ticket.subscription
        state.withLock { state in
            let eventId = ticket.eventId
            guard state.entries[eventId]?.subscription == ticket.subscription else { return }
            state.entries[eventId]?.loadsInFlight -= 1
            if stillLive && !updates.isEmpty {
                for update in updates { state.merge(update, into: eventId) }
                state.entries[eventId]?.loaded = true
            }
            if state.entries[eventId]?.loaded != true && state.entries[eventId]?.loadsInFlight == 0 {
                state.entries.removeValue(forKey: eventId)
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
        state.withLock { state in
            guard state.entries[update.eventId]?.subscription == live else { return }
            state.merge(update, into: update.eventId)
        }
    }

    var count: Int { state.withLock { $0.entries.count } }
}
