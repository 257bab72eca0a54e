import Contracts
import Foundation
import Testing
@testable import OddsProcessor

/// The processor's liveness rule of one feed (`FeedLiveness`), without I/O: instants and wall
/// times are made up, so every case is exact.
@Suite("Feed liveness rule (pure logic)")
struct FeedLivenessRuleTests {
    static let feed = "supplier-simulator"
    static let staleAfter = Duration.seconds(3)
    /// A monotonic origin and the wall time that goes with it.
    static let t0 = ContinuousClock.now
    static let wall0 = Timestamp(millisecondsSinceEpoch: 1_795_000_000_000)

    static func at(_ milliseconds: Int) -> ContinuousClock.Instant { t0 + .milliseconds(milliseconds) }
    static func wall(_ milliseconds: Int) -> Timestamp {
        Timestamp(millisecondsSinceEpoch: wall0.millisecondsSinceEpoch + Int64(milliseconds))
    }

    static func heartbeat(_ state: FeedHeartbeat.State, _ reason: String?, since: Int, sent: Int) -> FeedHeartbeat {
        FeedHeartbeat(feed: feed, state: state, reason: reason, since: wall(since), sentAt: wall(sent),
                      ingest: "test-host:1", position: "1795000000000000:42")
    }

    static func fresh(stored: FeedStatus? = nil) -> FeedLiveness {
        FeedLiveness(feed: feed, staleAfter: staleAfter, stored: stored, now: at(0), wallNow: wall(0))
    }

    /// The overlay a decision stores, or nil when it stores nothing.
    static func stored(_ decision: FeedLiveness.Decision) -> FeedStatus? {
        if case .store(let status) = decision { status } else { nil }
    }

    @Test("a feed without a stored overlay starts open")
    func startsOpen() {
        let liveness = Self.fresh()
        #expect(!liveness.isSuspended)
        #expect(liveness.overlay == .open(feed: Self.feed, since: Self.wall(0)))
        #expect(!liveness.reopenPending)
    }

    @Test("a down or recovering heartbeat suspends at once, with ingest's reason as detail and ingest's since",
          arguments: [
            (FeedHeartbeat.State.down, "supplier_silent"),
            (.down, "supplier_disconnected"),
            (.down, "starting"),
            (.recovering, "recovering"),
          ])
    func downOrRecoveringSuspends(state: FeedHeartbeat.State, reason: String) {
        var liveness = Self.fresh()
        let result1 = liveness.observe(Self.heartbeat(.up, nil, since: 0, sent: 500), at: Self.at(500), wallNow: Self.wall(500))
        #expect(result1 == .none)
        // Ingest saw the feed go at 1,200 ms; its heartbeat reaches the processor at 1,300 ms.
        let decision = liveness.observe(Self.heartbeat(state, reason, since: 1_200, sent: 1_250), at: Self.at(1_300), wallNow: Self.wall(1_300))
        let expected = FeedStatus(feed: Self.feed, state: .suspended, reason: "feed_down", detail: reason, since: Self.wall(1_200))
        #expect(decision == .store(expected))
        #expect(liveness.overlay == expected)
        #expect(liveness.isSuspended)
        // Further heartbeats of the outage change nothing (no new store, since kept).
        let result2 = liveness.observe(Self.heartbeat(.down, "supplier_disconnected", since: 2_000, sent: 2_100), at: Self.at(2_100), wallNow: Self.wall(2_100))
        #expect(result2 == .none)
        let result3 = liveness.observe(Self.heartbeat(.recovering, "recovering", since: 3_000, sent: 3_100), at: Self.at(3_100), wallNow: Self.wall(3_100))
        #expect(result3 == .none)
        #expect(liveness.overlay == expected)
    }

    @Test("a heartbeat whose since is ahead of the processor's clock is suspended since the processor's now")
    func sinceNeverInTheFuture() {
        var liveness = Self.fresh()
        let decision = liveness.observe(Self.heartbeat(.down, "supplier_silent", since: 9_000, sent: 9_000), at: Self.at(1_000), wallNow: Self.wall(1_000))
        #expect(Self.stored(decision)?.since == Self.wall(1_000))
    }

    @Test("a down heartbeat without a reason is suspended with its state as detail")
    func downWithoutReason() {
        var liveness = Self.fresh()
        let decision = liveness.observe(Self.heartbeat(.down, nil, since: 100, sent: 100), at: Self.at(100), wallNow: Self.wall(100))
        #expect(Self.stored(decision) == .suspended(feed: Self.feed, detail: "down", since: Self.wall(100)))
    }

    @Test("no heartbeat for longer than staleAfter suspends with heartbeat_missing, since the last heartbeat")
    func heartbeatMissing() {
        var liveness = Self.fresh()
        let result4 = liveness.observe(Self.heartbeat(.up, nil, since: 0, sent: 1_000), at: Self.at(1_000), wallNow: Self.wall(1_000))
        #expect(result4 == .none)
        #expect(liveness.nextCheck() == Self.at(1_000) + Self.staleAfter + .milliseconds(1))
        #expect(liveness.heartbeatAge(at: Self.at(2_500)) == .milliseconds(1_500))
        // Exactly staleAfter is not yet stale.
        let result5 = liveness.check(at: Self.at(2_000))
        #expect(result5 == .none)
        let result6 = liveness.check(at: Self.at(4_000))
        #expect(result6 == .none)
        #expect(!liveness.isSuspended)
        let decision = liveness.check(at: Self.at(4_001))
        #expect(decision == .store(.suspended(feed: Self.feed, detail: "heartbeat_missing", since: Self.wall(1_000))))
        #expect(liveness.isSuspended)
        // Stored once; later checks of the same outage store nothing more.
        let result7 = liveness.check(at: Self.at(10_000))
        #expect(result7 == .none)
        #expect(liveness.overlay.detail == "heartbeat_missing")
    }

    @Test("a feed that never sends a heartbeat is suspended staleAfter after the processor started, since then (just after the open state began)")
    func neverAHeartbeat() {
        var liveness = Self.fresh()
        let result8 = liveness.check(at: Self.at(3_000))
        #expect(result8 == .none)
        let result9 = liveness.check(at: Self.at(3_001))
        // The start is both the open state's since and the last "heartbeat": the suspension
        // begins 1 ms later, so since never repeats.
        #expect(Self.stored(result9) == .suspended(feed: Self.feed, detail: "heartbeat_missing", since: Self.wall(1)))
    }

    @Test("since never goes backwards: a state older by the other host's clock starts just after the current one")
    func sinceNeverGoesBackwards() {
        // Stored open since 10 s (this processor's clock); ingest's clock says the feed went
        // down at 5 s.
        var liveness = FeedLiveness(feed: Self.feed, staleAfter: Self.staleAfter, stored: .open(feed: Self.feed, since: Self.wall(10_000)),
                                    now: Self.at(0), wallNow: Self.wall(0))
        let suspended = liveness.observe(Self.heartbeat(.down, "supplier_silent", since: 5_000, sent: 5_000), at: Self.at(100), wallNow: Self.wall(100))
        #expect(Self.stored(suspended)?.since == Self.wall(10_001))
        // Reopened at a wall time before that: just after it.
        _ = liveness.observe(Self.heartbeat(.up, nil, since: 6_000, sent: 6_000), at: Self.at(200), wallNow: Self.wall(200))
        let reopened = liveness.caughtUp(wallNow: Self.wall(300))
        #expect(Self.stored(reopened) == .open(feed: Self.feed, since: Self.wall(10_002)))
        // And a heartbeat-missing suspension whose last heartbeat is older than the reopening.
        let missing = liveness.check(at: Self.at(3_201))
        #expect(Self.stored(missing)?.since == Self.wall(10_003))
        #expect(Self.stored(missing)?.detail == "heartbeat_missing")
    }

    @Test("an up heartbeat does not reopen by itself: only caughtUp does, since its wall time")
    func reopenWaitsForCaughtUp() {
        var liveness = Self.fresh()
        _ = liveness.observe(Self.heartbeat(.down, "supplier_silent", since: 500, sent: 500), at: Self.at(500), wallNow: Self.wall(500))
        let result10 = liveness.caughtUp(wallNow: Self.wall(600))
        #expect(result10 == .none, "caughtUp before any up heartbeat reopened the feed")
        #expect(liveness.isSuspended)

        let result11 = liveness.observe(Self.heartbeat(.up, nil, since: 2_000, sent: 2_000), at: Self.at(2_000), wallNow: Self.wall(2_000))
        #expect(result11 == .reopenWhenCaughtUp)
        #expect(liveness.isSuspended && liveness.reopenPending)
        // More up heartbeats while waiting: still one pending reopening, still suspended.
        let result12 = liveness.observe(Self.heartbeat(.up, nil, since: 2_000, sent: 3_000), at: Self.at(3_000), wallNow: Self.wall(3_000))
        #expect(result12 == .none)
        let result13 = liveness.check(at: Self.at(3_500))
        #expect(result13 == .none)
        #expect(liveness.isSuspended && liveness.reopenPending)

        let result14 = liveness.caughtUp(wallNow: Self.wall(3_200))
        #expect(result14 == .store(.open(feed: Self.feed, since: Self.wall(3_200))))
        #expect(!liveness.isSuspended && !liveness.reopenPending)
        let result15 = liveness.caughtUp(wallNow: Self.wall(3_300))
        #expect(result15 == .none)
        // Open, an up heartbeat is no news.
        let result16 = liveness.observe(Self.heartbeat(.up, nil, since: 2_000, sent: 4_000), at: Self.at(4_000), wallNow: Self.wall(4_000))
        #expect(result16 == .none)
    }

    @Test("a down heartbeat after up cancels the pending reopening", arguments: [FeedHeartbeat.State.down, .recovering])
    func downCancelsPendingReopen(state: FeedHeartbeat.State) {
        var liveness = Self.fresh()
        _ = liveness.observe(Self.heartbeat(.down, "supplier_disconnected", since: 500, sent: 500), at: Self.at(500), wallNow: Self.wall(500))
        let suspended = liveness.overlay
        let result17 = liveness.observe(Self.heartbeat(.up, nil, since: 1_000, sent: 1_000), at: Self.at(1_000), wallNow: Self.wall(1_000))
        #expect(result17 == .reopenWhenCaughtUp)
        let result18 = liveness.observe(Self.heartbeat(state, "supplier_silent", since: 1_100, sent: 1_100), at: Self.at(1_100), wallNow: Self.wall(1_100))
        #expect(result18 == .none)
        #expect(!liveness.reopenPending)
        // The read models catching up with the earlier up must not reopen now.
        let result19 = liveness.caughtUp(wallNow: Self.wall(1_200))
        #expect(result19 == .none)
        #expect(liveness.overlay == suspended, "the suspension (and its since) must stay as it was")
        // A new up starts a new reopening.
        let result20 = liveness.observe(Self.heartbeat(.up, nil, since: 2_000, sent: 2_000), at: Self.at(2_000), wallNow: Self.wall(2_000))
        #expect(result20 == .reopenWhenCaughtUp)
        let result21 = liveness.caughtUp(wallNow: Self.wall(2_100))
        #expect(Self.stored(result21)?.state == .open)
    }

    @Test("heartbeats that stop while a reopening is pending cancel it")
    func staleCancelsPendingReopen() {
        var liveness = Self.fresh()
        _ = liveness.observe(Self.heartbeat(.down, "supplier_silent", since: 500, sent: 500), at: Self.at(500), wallNow: Self.wall(500))
        let result22 = liveness.observe(Self.heartbeat(.up, nil, since: 1_000, sent: 1_000), at: Self.at(1_000), wallNow: Self.wall(1_000))
        #expect(result22 == .reopenWhenCaughtUp)
        let result23 = liveness.check(at: Self.at(4_001))
        #expect(result23 == .none, "already suspended: nothing new to store")
        #expect(!liveness.reopenPending)
        let result24 = liveness.caughtUp(wallNow: Self.wall(4_100))
        #expect(result24 == .none)
        #expect(liveness.isSuspended)
    }

    @Test("a stored suspended overlay stays suspended after a restart until an up heartbeat and caughtUp",
          arguments: ["heartbeat_missing", "supplier_silent", "recovering"])
    func storedSuspensionSurvivesRestart(detail: String) {
        let before = FeedStatus.suspended(feed: Self.feed, detail: detail, since: Self.wall(-60_000))
        var liveness = Self.fresh(stored: before)
        #expect(liveness.isSuspended && liveness.overlay == before)
        // Whatever comes short of up + caught up changes nothing.
        let result25 = liveness.caughtUp(wallNow: Self.wall(100))
        #expect(result25 == .none)
        let result26 = liveness.check(at: Self.at(10_000))
        #expect(result26 == .none)
        let result27 = liveness.observe(Self.heartbeat(.down, "starting", since: 10_000, sent: 10_000), at: Self.at(10_000), wallNow: Self.wall(10_000))
        #expect(result27 == .none)
        let result28 = liveness.observe(Self.heartbeat(.recovering, "recovering", since: 10_500, sent: 10_500), at: Self.at(10_500), wallNow: Self.wall(10_500))
        #expect(result28 == .none)
        #expect(liveness.overlay == before, "the stored suspension (detail, since) must be kept")

        let result29 = liveness.observe(Self.heartbeat(.up, nil, since: 11_000, sent: 11_000), at: Self.at(11_000), wallNow: Self.wall(11_000))
        #expect(result29 == .reopenWhenCaughtUp)
        #expect(liveness.isSuspended)
        let result30 = liveness.caughtUp(wallNow: Self.wall(11_200))
        #expect(result30 == .store(.open(feed: Self.feed, since: Self.wall(11_200))))
    }

    @Test("a stored open overlay of a feed whose ingest is gone is suspended staleAfter after the restart")
    func storedOpenWithoutHeartbeats() {
        var liveness = Self.fresh(stored: .open(feed: Self.feed, since: Self.wall(-5_000)))
        #expect(!liveness.isSuspended)
        let result31 = liveness.check(at: Self.at(3_000))
        #expect(result31 == .none)
        let result32 = liveness.check(at: Self.at(3_001))
        #expect(Self.stored(result32) == .suspended(feed: Self.feed, detail: "heartbeat_missing", since: Self.wall(0)))
    }

    @Test("the overlay's JSON is the contract's: camelCase members, RFC 3339 milliseconds; it reads back equal")
    func overlayJSON() throws {
        let suspended = FeedStatus.suspended(feed: Self.feed, detail: "heartbeat_missing", since: Timestamp(millisecondsSinceEpoch: 1_795_000_000_123))
        let object = try #require(try JSONSerialization.jsonObject(with: suspended.jsonData()) as? [String: Any])
        #expect(object["feed"] as? String == Self.feed)
        #expect(object["state"] as? String == "suspended")
        #expect(object["reason"] as? String == "feed_down")
        #expect(object["detail"] as? String == "heartbeat_missing")
        #expect(object["since"] as? String == "2026-11-18T11:06:40.123Z")
        #expect(try ContractCoding.decoder.decode(FeedStatus.self, from: suspended.jsonData()) == suspended)
        let open = FeedStatus.open(feed: Self.feed, since: Self.wall(0))
        let openObject = try #require(try JSONSerialization.jsonObject(with: open.jsonData()) as? [String: Any])
        #expect(openObject["state"] as? String == "open")
        #expect(openObject["reason"] == nil || openObject["reason"] is NSNull)
        #expect(try ContractCoding.decoder.decode(FeedStatus.self, from: open.jsonData()) == open)
    }
}
