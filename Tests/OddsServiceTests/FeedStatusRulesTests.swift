import Contracts
import Foundation
import Hummingbird
import Testing
@testable import OddsService

/// The feed suspension rules without any I/O: effective status, event status, the overlay's
/// ordering guard, what a connection is told and when, and that conflation keeps status frames.
@Suite("feed status rules (pure)")
struct FeedStatusRulesTests {
    static let feed = "supplier-simulator"
    static let t1 = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)
    static let t2 = Timestamp(millisecondsSinceEpoch: 1_795_000_060_000)

    func update(_ event: String = "E", _ market: String = "1x2", version: Int64 = 1, status: MarketStatus = .open,
                source: String = feed) -> OddsUpdate {
        var update = Fixtures.update(event, market, version: version, status: status)
        update.source = source
        return update
    }

    func oddsFrame(_ update: OddsUpdate) -> PendingFrame {
        PendingFrame.odds(update, bytes: ByteBuffer(string: "\(update.market):\(update.version)"))
    }

    // MARK: effective status

    @Test func aSuspendedFeedSuspendsItsMarketsWhateverTheSupplierSaid() {
        let overlay = [Self.feed: FeedStatus.suspended(feed: Self.feed, detail: "supplier_silent", since: Self.t1)]
        for supplier in MarketStatus.allCases {
            let effective = EffectiveStatus.of(update(status: supplier), overlay: overlay)
            #expect(effective == EffectiveStatus(status: .suspended, reason: .feedDown, since: Self.t1))
        }
        // Another feed's markets keep their supplier status.
        #expect(EffectiveStatus.of(update(source: "other"), overlay: overlay) == .open)
        #expect(EffectiveStatus.of(update(status: .suspended, source: "other"), overlay: overlay)
            == EffectiveStatus(status: .suspended, reason: .supplier, since: nil))
    }

    @Test func anOpenOrUnknownFeedLeavesTheSupplierStatus() {
        let open = [Self.feed: FeedStatus.open(feed: Self.feed, since: Self.t2)]
        for overlay in [open, [:]] {
            #expect(EffectiveStatus.of(update(), overlay: overlay) == .open)
            #expect(EffectiveStatus.of(update(status: .suspended), overlay: overlay)
                == EffectiveStatus(status: .suspended, reason: .supplier, since: nil))
        }
    }

    @Test func restTypesCarryTheEffectiveStatusAndKeepTheSupplierStatus() throws {
        let overlay = [Self.feed: FeedStatus.suspended(feed: Self.feed, detail: "heartbeat_missing", since: Self.t1)]
        let odds = MarketOdds(update(status: .open), overlay: overlay)
        #expect(odds.status == .open)
        #expect(odds.effectiveStatus == .suspended)
        let text = String(decoding: try ContractCoding.encoder.encode(odds), as: UTF8.self)
        #expect(text.contains(#""effectiveStatus":"suspended""#))
        #expect(text.contains(#""statusReason":"feed_down""#))
        #expect(text.contains(#""statusSince":"\#(Self.t1.rfc3339)""#))
        #expect(text.contains(#""status":"open""#))

        let summary = String(decoding: try ContractCoding.encoder.encode(MarketSummary(update(status: .suspended))), as: UTF8.self)
        #expect(summary.contains(#""effectiveStatus":"suspended""#) && summary.contains(#""statusReason":"supplier""#))
        #expect(!summary.contains("statusSince"))
        let open = String(decoding: try ContractCoding.encoder.encode(MarketSummary(update())), as: UTF8.self)
        #expect(open.contains(#""effectiveStatus":"open""#) && !open.contains("statusReason") && !open.contains("statusSince"))

        let event = EventSummary(eventId: "E", homeTeam: "A", awayTeam: "B", markets: ["1x2"], lastUpdate: Self.t1,
                                 sources: [Self.feed])
        let suspendedEvent = event.withOverlay(overlay)
        #expect(suspendedEvent.effectiveStatus == .suspended && suspendedEvent.statusReason == .feedDown)
        #expect(suspendedEvent.statusSince == Self.t1)
        let eventText = String(decoding: try ContractCoding.encoder.encode(event.withOverlay([:])), as: UTF8.self)
        #expect(eventText.contains(#""effectiveStatus":"open""#) && !eventText.contains("sources"))
        #expect(try JSONDecoder().decode(EventSummary.self, from: Data(eventText.utf8)).effectiveStatus == .open)
    }

    @Test func anEventIsSuspendedWhileAnyOfItsFeedsIsDown() {
        let overlay = [
            "a": FeedStatus.suspended(feed: "a", detail: "supplier_silent", since: Self.t2),
            "b": FeedStatus.suspended(feed: "b", detail: "recovering", since: Self.t1),
            "c": FeedStatus.open(feed: "c", since: Self.t2),
        ]
        #expect(EventStatus.of(feeds: ["a", "b", "c"], overlay: overlay) == .suspended(since: Self.t1))
        #expect(EventStatus.of(feeds: ["c"], overlay: overlay) == .open(since: Self.t2))
        #expect(EventStatus.of(feeds: ["unknown"], overlay: overlay) == nil)
        #expect(EffectiveStatus.ofEvent(feeds: ["c", "a"], overlay: overlay) == .feedDown(since: Self.t2))
        #expect(EffectiveStatus.ofEvent(feeds: ["c"], overlay: overlay) == .open)
    }

    // MARK: the overlay

    @Test func theOverlayNeverGoesBackInTime() {
        let down = FeedStatus.suspended(feed: Self.feed, detail: "supplier_silent", since: Self.t1)
        let up = FeedStatus.open(feed: Self.feed, since: Self.t2)
        #expect(FeedStatusBoard.outcome(current: nil, new: down) == .updated(pushNeeded: true))
        #expect(FeedStatusBoard.outcome(current: down, new: down) == .unchanged)
        #expect(FeedStatusBoard.outcome(current: down, new: up) == .updated(pushNeeded: true))
        // A message published before the hash was read, handled after it.
        #expect(FeedStatusBoard.outcome(current: up, new: down) == .stale)
        // Same state and since, another detail: stored, nothing to tell subscribers.
        var detail = down
        detail.detail = "recovering"
        #expect(FeedStatusBoard.outcome(current: down, new: detail) == .updated(pushNeeded: false))

        let board = FeedStatusBoard(metrics: ServiceMetrics())
        #expect(board.generation == 0)
        board.apply(up)
        #expect(board.generation == 1, "a stored change moves the generation (held REST answers are rendered again)")
        #expect(board.apply(down) == .stale)
        #expect(board.apply(up) == .unchanged)
        #expect(board.generation == 1, "nothing stored, nothing to render again")
        #expect(board.status(of: Self.feed) == up)
    }

    // MARK: what a connection is told

    @Test func aConnectionIsToldOnlyChanges() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        let suspended = EventStatus.suspended(since: Self.t1)
        let open = EventStatus.open(since: Self.t2)
        let down = PendingFrame.status(eventId: "E", status: suspended)
        let up = PendingFrame.status(eventId: "E", status: open)
        #expect(state.offerStatus(eventId: "E", status: suspended, frame: down) == .notSubscribed)
        _ = state.subscribe(eventIds: ["E"], resume: [:])
        // The snapshot is loading: it will carry the status of the moment it is queued.
        #expect(state.offerStatus(eventId: "E", status: suspended, frame: down) == .awaitingSnapshot)
        _ = state.completeSnapshot(eventId: "E", markets: [], status: { _ in nil }) { _, _ in
            PendingFrame(kind: .snapshot, bytes: ByteBuffer(), eventId: "E")
        }
        // Never told anything = open: a reopening is news only after a suspension.
        #expect(state.offerStatus(eventId: "E", status: open, frame: up) == .unchanged)
        #expect(state.offerStatus(eventId: "E", status: suspended, frame: down) == .queued)
        #expect(state.offerStatus(eventId: "E", status: suspended, frame: down) == .unchanged)
        #expect(state.offerStatus(eventId: "E", status: .suspended(since: Self.t2), frame: down) == .queued)
        #expect(state.offerStatus(eventId: "E", status: open, frame: up) == .queued)
        #expect(state.offerStatus(eventId: "E", status: open, frame: up) == .unchanged)
        #expect(state.popBatch(max: 10).map(\.kind) == [.snapshot, .status, .status, .status])
        _ = state.unsubscribe(eventIds: ["E"])
        #expect(state.lastStatus["E"] == nil)
    }

    @Test func aSnapshotTakenDuringAnOutageCarriesTheSuspension() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        _ = state.subscribe(eventIds: ["E"], resume: [:])
        // A delta of a feed the snapshot read did not know arrives while it loads: its feed
        // counts too.
        let held = update(version: 3, source: "late-feed")
        #expect(state.offer(held, frame: oddsFrame(held)) == .buffered)
        var askedFeeds: Set<String> = []
        var carried: EventStatus?
        _ = state.completeSnapshot(eventId: "E", markets: [update("E", "btts", version: 2)], status: { feeds in
            askedFeeds = feeds
            return .suspended(since: Self.t1)
        }) { _, status in
            carried = status
            return .control(.pong, .pong)
        }
        #expect(askedFeeds == [Self.feed, "late-feed"])
        #expect(carried == .suspended(since: Self.t1))
        #expect(state.lastStatus["E"] == .suspended(since: Self.t1))
        // The suspension it carried is not sent again; the reopening is.
        #expect(state.offerStatus(eventId: "E", status: .suspended(since: Self.t1),
                                  frame: .status(eventId: "E", status: .suspended(since: Self.t1))) == .unchanged)
        #expect(state.offerStatus(eventId: "E", status: .open(since: Self.t2),
                                  frame: .status(eventId: "E", status: .open(since: Self.t2))) == .queued)
    }

    @Test func conflationNeverDropsStatusFramesAndKeepsTheNewestPerEvent() {
        var queue = OutboundQueue(limit: 4, hardLimit: 16)
        _ = queue.push(oddsFrame(update("E", "1x2", version: 1)))
        _ = queue.push(oddsFrame(update("E", "1x2", version: 2)))
        _ = queue.push(oddsFrame(update("E", "btts", version: 1)))
        _ = queue.push(.status(eventId: "E", status: .suspended(since: Self.t1)))
        // Full: compaction drops 1x2 v1, never the status frame.
        #expect(queue.push(oddsFrame(update("E", "ou_2_5", version: 1))) == .conflated(dropped: 1))
        #expect(queue.isConflating)
        #expect(queue.push(.status(eventId: "F", status: .suspended(since: Self.t1))) == .queued)
        // While conflating, a newer status of E replaces its pending one in place.
        #expect(queue.push(.status(eventId: "E", status: .open(since: Self.t2))) == .conflated(dropped: 1))
        let batch = queue.popBatch(max: 100)
        #expect(batch.map(\.kind) == [.odds, .odds, .status, .odds, .status])
        let texts = batch.filter { $0.kind == .status }.map { String(buffer: $0.bytes) }
        #expect(texts.count == 2)
        #expect(texts.first?.contains(#""effectiveStatus":"open""#) == true && texts.first?.contains(#""eventId":"E""#) == true)
        #expect(texts.last?.contains(#""eventId":"F""#) == true)
    }

    @Test func unsubscribeDropsPendingStatusFrames() {
        var queue = OutboundQueue(limit: 10, hardLimit: 20)
        _ = queue.push(.status(eventId: "A", status: .suspended(since: Self.t1)))
        _ = queue.push(.status(eventId: "B", status: .suspended(since: Self.t1)))
        queue.removeAll(eventId: "A")
        #expect(queue.popBatch(max: 10).map(\.eventId) == ["B"])
    }

    // MARK: the hub

    @Test func theHubPushesAStatusFramePerFollowedEventOfTheFeed() {
        let metrics = ServiceMetrics()
        let board = FeedStatusBoard(metrics: metrics)
        let hub = FanOutHub(limits: .init(), metrics: metrics, board: board)
        guard let connection = hub.open(channel: nil) else { Issue.record("no connection"); return }
        _ = connection.subscribe(eventIds: ["E1", "E2", "OTHER"], resume: [:])
        hub.attach(connection, to: ["E1", "E2", "OTHER"])
        for (event, source) in [("E1", Self.feed), ("E2", Self.feed), ("OTHER", "other-feed")] {
            let markets = [update(event, source: source)]
            let feeds = hub.noteFeeds(of: event, markets: markets)
            connection.completeSnapshot(eventId: event, markets: markets) { hub.eventStatus(feeds: feeds.union($0)) }
        }
        board.apply(.suspended(feed: Self.feed, detail: "supplier_silent", since: Self.t1))
        #expect(hub.pushStatus(feed: Self.feed) == 2)
        // Pushed twice (the channel and a reload): told once.
        #expect(hub.pushStatus(feed: Self.feed) == 0)
        #expect(connection.pendingCount == 5)  // three snapshots, two status frames

        // A connection that subscribes during the outage gets the suspension in its snapshot.
        guard let late = hub.open(channel: nil) else { Issue.record("no connection"); return }
        _ = late.subscribe(eventIds: ["E1"], resume: [:])
        hub.attach(late, to: ["E1"])
        let feeds = hub.noteFeeds(of: "E1", markets: [update("E1")])
        #expect(feeds == [Self.feed])
        #expect(hub.eventStatus(feeds: feeds) == .suspended(since: Self.t1))

        board.apply(.open(feed: Self.feed, since: Self.t2))
        #expect(hub.pushStatus(feed: Self.feed) == 2)  // the first connection, E1 and E2; `late` still loads
        hub.remove(connection)
        hub.remove(late)
        #expect(hub.pushStatus(feed: Self.feed) == 0)
    }
}
