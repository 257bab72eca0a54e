import Contracts
import NIOCore
import Synchronization
import Testing
@testable import OddsService

/// The in-memory mirror's rules without I/O: what it holds, when it refuses to answer, and that
/// an update handled while a Redis read is in flight is never lost.
@Suite("live odds mirror (pure)")
struct LiveOddsMirrorTests {
    /// A subscription the test switches up, down and to a new number, with a pump backlog.
    final class FakeLink: BroadcastLink {
        private let state = Mutex<(live: UInt64?, backlog: Int)>((1, 0))
        var liveSubscription: UInt64? { state.withLock { $0.live } }
        var backlog: Int { state.withLock { $0.backlog } }
        func set(live: UInt64?) { state.withLock { $0.live = live } }
        func set(backlog: Int) { state.withLock { $0.backlog = backlog } }
    }

    let link = FakeLink()

    func update(_ event: String, _ market: String = "1x2", version: Int64) -> OddsUpdate {
        Fixtures.update(event, market, version: version)
    }

    func load(_ mirror: LiveOddsMirror, _ event: String, _ updates: [OddsUpdate]) throws {
        let ticket = try #require(mirror.beginLoad(event))
        mirror.finishLoad(ticket, with: updates)
    }

    func versions(_ held: [OddsUpdate]?) -> [String: Int64]? {
        held.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.market, $0.version) }) }
    }

    @Test func answersOnlyForLoadedEventsAndFollowsNewerUpdates() throws {
        let mirror = LiveOddsMirror(link: link)
        #expect(mirror.current("A") == nil)
        mirror.apply(update("A", version: 3))
        #expect(mirror.current("A") == nil, "a broadcast alone must not create an entry (other markets unknown)")

        try load(mirror, "A", [update("A", version: 5), update("A", "btts", version: 2)])
        #expect(mirror.current("A")?.map(\.market) == ["1x2", "btts"])
        mirror.apply(update("A", version: 6))
        mirror.apply(update("A", "btts", version: 1))
        mirror.apply(update("A", version: 4))
        #expect(versions(mirror.current("A")) == ["1x2": 6, "btts": 2])
        mirror.apply(update("A", "ou_2_5", version: 1))
        #expect(mirror.current("A")?.map(\.market) == ["1x2", "btts", "ou_2_5"])
    }

    @Test func anUpdateHandledDuringTheReadIsKept() throws {
        let mirror = LiveOddsMirror(link: link)
        let ticket = try #require(mirror.beginLoad("A"))
        #expect(mirror.current("A") == nil, "not answered before the read finished")
        // Published after Redis answered the read, handled before the answer is stored.
        mirror.apply(update("A", version: 8))
        mirror.finishLoad(ticket, with: [update("A", version: 7), update("A", "btts", version: 1)])
        #expect(versions(mirror.current("A")) == ["1x2": 8, "btts": 1])
    }

    @Test func neverAnswersAcrossALostOrNewSubscription() throws {
        let mirror = LiveOddsMirror(link: link)
        try load(mirror, "A", [update("A", version: 5)])
        link.set(live: nil)
        #expect(mirror.current("A") == nil, "subscription down")
        #expect(mirror.beginLoad("B") == nil, "no load is tracked while down")
        link.set(live: 2)
        #expect(mirror.current("A") == nil, "an entry of the previous subscription may have missed messages")
        mirror.apply(update("A", version: 9))
        #expect(mirror.current("A") == nil)
        try load(mirror, "A", [update("A", version: 6)])
        #expect(versions(mirror.current("A")) == ["1x2": 6])
    }

    @Test func aReadThatOutlivesItsSubscriptionIsNotKept() throws {
        let mirror = LiveOddsMirror(link: link)
        let ticket = try #require(mirror.beginLoad("A"))
        link.set(live: 2)
        mirror.finishLoad(ticket, with: [update("A", version: 5)])
        #expect(mirror.current("A") == nil)
        #expect(mirror.count == 0)
    }

    @Test func refusesWhileThePumpIsBehind() throws {
        let mirror = LiveOddsMirror(link: link, maxBacklog: 10)
        try load(mirror, "A", [update("A", version: 5)])
        link.set(backlog: 11)
        #expect(mirror.current("A") == nil)
        link.set(backlog: 10)
        #expect(versions(mirror.current("A")) == ["1x2": 5])
    }

    @Test func unknownEventsAndFailedReadsAreForgotten() throws {
        let mirror = LiveOddsMirror(link: link)
        try load(mirror, "UNKNOWN", [])
        #expect(mirror.current("UNKNOWN") == nil)
        let failed = try #require(mirror.beginLoad("B"))
        mirror.cancelLoad(failed)
        #expect(mirror.count == 0)

        // A failed read does not drop what an earlier one loaded.
        try load(mirror, "A", [update("A", version: 5)])
        let second = try #require(mirror.beginLoad("A"))
        mirror.cancelLoad(second)
        #expect(versions(mirror.current("A")) == ["1x2": 5])
    }

    /// The hot read's held body: rendered once, then served until the event's markets or the
    /// feed status overlay change; never served when the mirror cannot vouch for the event.
    @Test func theAnswerBodyIsRenderedOncePerChange() throws {
        let mirror = LiveOddsMirror(link: link)
        let renders = Mutex(0)
        func body(overlay: UInt64) -> String? {
            mirror.answerBody("A", overlayGeneration: overlay) { markets in
                renders.withLock { $0 += 1 }
                return ByteBuffer(string: markets.map { "\($0.market)=\($0.version)" }.joined(separator: ","))
            }.map { String(buffer: $0) }
        }
        #expect(body(overlay: 0) == nil, "not held: no body, nothing rendered")
        try load(mirror, "A", [update("A", version: 5), update("A", "btts", version: 2)])
        #expect(body(overlay: 0) == "1x2=5,btts=2")
        #expect(body(overlay: 0) == "1x2=5,btts=2")
        #expect(renders.withLock { $0 } == 1, "the second read is served as held")

        mirror.apply(update("A", version: 4))
        #expect(body(overlay: 0) == "1x2=5,btts=2")
        #expect(renders.withLock { $0 } == 1, "an older version changes nothing")
        mirror.apply(update("A", version: 6))
        #expect(body(overlay: 0) == "1x2=6,btts=2")
        #expect(renders.withLock { $0 } == 2)
        #expect(body(overlay: 1) == "1x2=6,btts=2")
        #expect(renders.withLock { $0 } == 3, "a feed status change renders again (effective status)")

        link.set(backlog: 1_000)
        #expect(body(overlay: 1) == nil, "behind: the held body is not served")
        link.set(backlog: 0)
        link.set(live: 2)
        #expect(body(overlay: 1) == nil, "a new subscription: the held body is not served")
    }

    /// A render that raced with a change of the markets is returned to its reader but not held.
    @Test func aBodyRenderedBeforeAChangeIsNotHeld() throws {
        let mirror = LiveOddsMirror(link: link)
        try load(mirror, "A", [update("A", version: 5)])
        let first = mirror.answerBody("A", overlayGeneration: 0) { markets in
            mirror.apply(update("A", version: 6))  // handled while this render runs
            return ByteBuffer(string: "v\(markets[0].version)")
        }
        #expect(first.map { String(buffer: $0) } == "v5")
        let second = mirror.answerBody("A", overlayGeneration: 0) { ByteBuffer(string: "v\($0[0].version)") }
        #expect(second.map { String(buffer: $0) } == "v6")
    }

    @Test func staysWithinItsCapacity() throws {
        let mirror = LiveOddsMirror(link: link, capacity: 3)
        for index in 0..<10 { try load(mirror, "E\(index)", [update("E\(index)", version: 1)]) }
        #expect(mirror.count <= 3)
        #expect(mirror.current("E9") != nil, "the newest event is held")
    }
}

@Suite("odds frame splicing (pure)")
struct OddsFrameTests {
    @Test func aSplicedFrameIsWhatEncodingTheMessageGives() throws {
        for eventId in ["MATCH_1", "E.2:x-y", "odd\"id"] {
            var update = Fixtures.update(eventId, "btts", version: 7)
            update.homeTeam = "Grêmio \"B\" / Sub-20"
            let payload = Array(update.jsonData())
            let spliced = FanOutHub.oddsFrame(eventId: eventId, payloadJSON: payload[...])
            let encoded = Array(try ContractCoding.encoder.encode(ServerMessage.odds(eventId: eventId, payload: update)))
            #expect(spliced == encoded, "\(eventId)")
        }
    }
}
