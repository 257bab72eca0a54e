import Contracts
import Foundation
import Hummingbird
import Testing
@testable import OddsService

/// The per-connection business rules without any I/O.
@Suite("connection rules (pure)")
struct ConnectionRulesTests {
    func frame(_ update: OddsUpdate) -> PendingFrame {
        PendingFrame.odds(update, bytes: ByteBuffer(string: "\(update.market):\(update.version)"))
    }

    func control() -> PendingFrame { .control(.pong, .pong) }

    @Test func queueKeepsEveryFrameBelowTheLimit() {
        var queue = OutboundQueue(limit: 10, hardLimit: 20)
        for version in 1...5 { #expect(queue.push(frame(Fixtures.update("E", version: Int64(version)))) == .queued) }
        #expect(queue.count == 5)
        #expect(queue.popBatch(max: 100).map(\.version) == [1, 2, 3, 4, 5])
        #expect(queue.isEmpty)
    }

    @Test func queueConflatesToNewestPerMarketWhenFull() {
        var queue = OutboundQueue(limit: 4, hardLimit: 8)
        _ = queue.push(frame(Fixtures.update("E", "1x2", version: 1)))
        _ = queue.push(frame(Fixtures.update("E", "btts", version: 1)))
        _ = queue.push(frame(Fixtures.update("E", "1x2", version: 2)))
        _ = queue.push(control())
        // Full: compaction drops 1x2 v1, then btts v2 replaces btts v1 in place.
        #expect(queue.push(frame(Fixtures.update("E", "btts", version: 2))) == .conflated(dropped: 2))
        #expect(queue.isConflating)
        #expect(queue.push(frame(Fixtures.update("E", "1x2", version: 3))) == .conflated(dropped: 1))
        let batch = queue.popBatch(max: 100)
        #expect(batch.map { "\($0.key?.market ?? $0.kind.rawValue):\($0.version)" } == ["btts:2", "1x2:3", "pong:0"])
        #expect(!queue.isConflating)
    }

    @Test func queueOverflowsBeyondHardLimitOfDistinctMarkets() {
        var queue = OutboundQueue(limit: 2, hardLimit: 3)
        var results: [OutboundQueue.PushResult] = []
        for market in ["a", "b", "c", "d"] { results.append(queue.push(frame(Fixtures.update("E", market, version: 1)))) }
        #expect(results.last == .overflow)
    }

    @Test func queueRemovesAnEventsFrames() {
        var queue = OutboundQueue(limit: 10, hardLimit: 20)
        _ = queue.push(frame(Fixtures.update("A", version: 1)))
        _ = queue.push(frame(Fixtures.update("B", version: 1)))
        _ = queue.push(frame(Fixtures.update("A", version: 2)))
        queue.removeAll(eventId: "A")
        #expect(queue.popBatch(max: 10).map { $0.eventId } == ["B"])
    }

    @Test func versionGuardDropsStaleAndDuplicates() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        #expect(state.subscribe(eventIds: ["E"], resume: [:]) == .success(["E"]))
        _ = state.completeSnapshot(eventId: "E", markets: []) { _, _ in control() }
        let v5 = Fixtures.update("E", version: 5)
        #expect(state.offer(v5, frame: frame(v5)) == .queued)
        #expect(state.offer(v5, frame: frame(v5)) == .stale)
        let v4 = Fixtures.update("E", version: 4)
        #expect(state.offer(v4, frame: frame(v4)) == .stale)
        let v6 = Fixtures.update("E", version: 6)
        #expect(state.offer(v6, frame: frame(v6)) == .queued)
        let other = Fixtures.update("X", version: 1)
        #expect(state.offer(other, frame: frame(other)) == .notSubscribed)
    }

    @Test func directSendOnlyWhenNothingIsPending() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        _ = state.subscribe(eventIds: ["E"], resume: [:])
        // While the snapshot loads, a delta is held even if the socket could take it.
        let v1 = Fixtures.update("E", version: 1)
        #expect(state.offer(v1, frame: frame(v1), canSendNow: true) == .buffered)
        _ = state.completeSnapshot(eventId: "E", markets: []) { _, _ in control() }
        // The snapshot is queued: a newer delta queues behind it instead of overtaking it.
        let v2 = Fixtures.update("E", version: 2)
        #expect(state.offer(v2, frame: frame(v2), canSendNow: true) == .queued)
        _ = state.popBatch(max: 10)
        // Queue empty: the caller writes it, and the version guard counts it as sent.
        let v3 = Fixtures.update("E", version: 3)
        #expect(state.offer(v3, frame: frame(v3), canSendNow: true) == .sendNow)
        #expect(state.queue.isEmpty)
        #expect(state.offer(v3, frame: frame(v3), canSendNow: true) == .stale)
        let v4 = Fixtures.update("E", version: 4)
        #expect(state.offer(v4, frame: frame(v4), canSendNow: false) == .queued)
    }

    @Test func deltasDuringSnapshotAreFoldedIntoIt() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        _ = state.subscribe(eventIds: ["E"], resume: [:])
        let live = Fixtures.update("E", "1x2", version: 7)
        #expect(state.offer(live, frame: frame(live)) == .buffered)
        var sent: [OddsUpdate] = []
        let result = state.completeSnapshot(eventId: "E", markets: [
            Fixtures.update("E", "1x2", version: 6), Fixtures.update("E", "btts", version: 3),
        ]) { markets, _ in sent = markets; return control() }
        #expect(result?.markets.map(\.version) == [7, 3])
        #expect(sent.map(\.market) == ["1x2", "btts"])
        // Anything not newer than the snapshot is now stale.
        #expect(state.offer(live, frame: frame(live)) == .stale)
        let next = Fixtures.update("E", "1x2", version: 8)
        #expect(state.offer(next, frame: frame(next)) == .queued)
    }

    @Test func resumeSendsOnlyNewerMarkets() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        _ = state.subscribe(eventIds: ["E"], resume: ["1x2": 41, "btts": 9])
        let result = state.completeSnapshot(eventId: "E", markets: [
            Fixtures.update("E", "1x2", version: 41), Fixtures.update("E", "btts", version: 10),
            Fixtures.update("E", "ou_2_5", version: 1),
        ]) { _, _ in control() }
        #expect(result?.markets.map(\.market) == ["btts", "ou_2_5"])
        let old = Fixtures.update("E", "1x2", version: 40)
        #expect(state.offer(old, frame: frame(old)) == .stale)
    }

    @Test func subscriptionLimitIsAllOrNothing() {
        var state = ConnectionState(maxSubscriptions: 3, queueLimit: 100, queueHardLimit: 200)
        #expect(state.subscribe(eventIds: ["A", "B"], resume: [:]) == .success(["A", "B"]))
        #expect(state.subscribe(eventIds: ["C", "D"], resume: [:]) == .failure(.tooManySubscriptions(limit: 3)))
        #expect(state.subscriptionCount == 2)
        #expect(state.subscribe(eventIds: ["A", "C"], resume: [:]) == .success(["A", "C"]))
        #expect(state.unsubscribe(eventIds: ["A", "Z"]) == ["A"])
        #expect(state.subscriptionCount == 2)
    }

    @Test func unsubscribeDropsPendingFramesAndVersions() {
        var state = ConnectionState(maxSubscriptions: 10, queueLimit: 100, queueHardLimit: 200)
        _ = state.subscribe(eventIds: ["E"], resume: [:])
        _ = state.completeSnapshot(eventId: "E", markets: []) { _, _ in PendingFrame(kind: .snapshot, bytes: ByteBuffer(), eventId: "E") }
        let update = Fixtures.update("E", version: 3)
        _ = state.offer(update, frame: frame(update))
        _ = state.unsubscribe(eventIds: ["E"])
        #expect(state.queue.isEmpty)
        #expect(state.sentVersions.isEmpty)
    }

    @Test func tokenBucketAllowsBurstThenRate() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(ratePerSecond: 5, now: start)
        var results: [Bool] = []
        for _ in 0..<6 { results.append(bucket.take(now: start)) }
        #expect(results == [true, true, true, true, true, false])
        let refilled = bucket.take(now: start + .milliseconds(200))
        let tooSoon = bucket.take(now: start + .milliseconds(210))
        #expect(refilled && !tooSoon)
        var burst: [Bool] = []
        for _ in 0..<6 { burst.append(bucket.take(now: start + .seconds(10))) }
        #expect(burst == [true, true, true, true, true, false])
    }

    @Test func requestValidation() throws {
        #expect(try RequestValidation.eventId("MATCH_001:a.b-c") == "MATCH_001:a.b-c")
        #expect(throws: APIError.self) { try RequestValidation.eventId("bad id") }
        #expect(throws: APIError.self) { try RequestValidation.eventId(String(repeating: "x", count: 65)) }
        #expect(try RequestValidation.market("ou_2_5") == "ou_2_5")
        #expect(throws: APIError.self) { try RequestValidation.market("1X2") }
        #expect(throws: APIError.self) { try RequestValidation.market(nil) }
        #expect(try RequestValidation.limit(nil, default: 100, max: 1000) == 100)
        #expect(try RequestValidation.limit("1000", default: 100, max: 1000) == 1000)
        for bad in ["0", "1001", "-1", "ten", "1.5"] {
            #expect(throws: APIError.self) { try RequestValidation.limit(bad, default: 100, max: 1000) }
        }
    }
}
