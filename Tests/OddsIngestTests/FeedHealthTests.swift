import Contracts
import Testing
@testable import OddsIngest

/// What ingest reports about its feed (`FeedHealth`) and how one connection reads the
/// supplier's `alive` frames (`FeedSession`), without I/O.
@Suite("Feed health and alive frames (pure logic)")
struct FeedHealthTests {
    static let epoch: UInt64 = 1_795_000_000_000_000
    static func position(_ seq: UInt64, epoch: UInt64 = epoch) -> FeedPosition { FeedPosition(epoch: epoch, seq: seq) }
    static func time(_ milliseconds: Int64) -> Timestamp { Timestamp(millisecondsSinceEpoch: 1_795_000_000_000 + milliseconds) }

    // MARK: FeedHealth

    /// `state/reason` of what a heartbeat reports now.
    static func reported(_ health: FeedHealth) -> String { "\(health.report.state.rawValue)/\(health.report.reason ?? "-")" }

    @Test("starting, then disconnected, recovering, and up only once Kafka's claim reaches the recovery target")
    func startingToUp() {
        var health = FeedHealth(now: Self.time(0))
        #expect(health.link == .starting)
        #expect(Self.reported(health) == "down/starting")
        #expect(health.since == Self.time(0))

        health.disconnected(now: Self.time(100))
        #expect(health.link == .disconnected)
        #expect(Self.reported(health) == "down/supplier_disconnected")

        health.connected(at: Self.position(10), now: Self.time(200))
        #expect(health.link == .recovering(target: Self.position(10)))
        #expect(Self.reported(health) == "recovering/recovering")
        #expect(health.since == Self.time(200))

        // No claim yet, or a claim short of the target: still recovering.
        let result1 = health.acknowledged(through: nil, now: Self.time(300))
        #expect(!result1)
        let result2 = health.acknowledged(through: Self.position(9), now: Self.time(300))
        #expect(!result2)
        #expect(Self.reported(health) == "recovering/recovering")
        #expect(health.since == Self.time(200))

        let result3 = health.acknowledged(through: Self.position(10), now: Self.time(400))
        #expect(result3)
        #expect(health.link == .live)
        #expect(Self.reported(health) == "up/-")
        #expect(health.since == Self.time(400))
        // Live stays live; later acknowledgements are no change.
        let result4 = health.acknowledged(through: Self.position(50), now: Self.time(500))
        #expect(!result4)
        #expect(health.since == Self.time(400))
    }

    @Test("a claim beyond the target (Kafka acknowledged frames read after the hello) is up too")
    func claimBeyondTarget() {
        var health = FeedHealth(now: Self.time(0))
        health.connected(at: Self.position(10), now: Self.time(100))
        let result5 = health.acknowledged(through: Self.position(12), now: Self.time(200))
        #expect(result5)
        #expect(health.report.state == .up)
    }

    @Test("a claim of an older epoch never makes a recovery from a restarted supplier up")
    func olderEpochClaim() {
        var health = FeedHealth(now: Self.time(0))
        health.connected(at: Self.position(3, epoch: Self.epoch + 1), now: Self.time(100))
        let result6 = health.acknowledged(through: Self.position(999_999), now: Self.time(200))
        #expect(!result6)
        #expect(health.report.state == .recovering)
        let result7 = health.acknowledged(through: Self.position(3, epoch: Self.epoch + 1), now: Self.time(300))
        #expect(result7)
    }

    @Test("acknowledgements while not recovering change nothing")
    func acknowledgedOnlyWhileRecovering() {
        var health = FeedHealth(now: Self.time(0))
        let result8 = health.acknowledged(through: Self.position(10), now: Self.time(100))
        #expect(!result8)
        #expect(health.link == .starting)
        health.disconnected(now: Self.time(200))
        let result9 = health.acknowledged(through: Self.position(10), now: Self.time(300))
        #expect(!result9)
        #expect(health.link == .disconnected)
        health.silent(now: Self.time(400))
        let result10 = health.acknowledged(through: Self.position(10), now: Self.time(500))
        #expect(!result10)
        #expect(health.link == .silent)
    }

    @Test("a silent feed stays reported silent through the disconnects that follow, until the next hello")
    func silentUntilNextHello() {
        var health = FeedHealth(now: Self.time(0))
        health.connected(at: Self.position(5), now: Self.time(100))
        _ = health.acknowledged(through: Self.position(5), now: Self.time(150))
        #expect(health.report.state == .up)

        health.silent(now: Self.time(2_650))
        #expect(Self.reported(health) == "down/supplier_silent")
        #expect(health.since == Self.time(2_650))
        // The silent connection is closed; reconnect attempts fail (a frozen supplier).
        for attempt in 1...3 {
            health.disconnected(now: Self.time(2_650 + Int64(attempt) * 1_000))
            #expect(Self.reported(health) == "down/supplier_silent", "attempt \(attempt)")
        }
        #expect(health.since == Self.time(2_650))

        // The next hello ends it.
        health.connected(at: Self.position(7), now: Self.time(9_000))
        #expect(Self.reported(health) == "recovering/recovering")
        #expect(health.since == Self.time(9_000))
        // A disconnect now is reported as such.
        health.disconnected(now: Self.time(9_500))
        #expect(Self.reported(health) == "down/supplier_disconnected")
        #expect(health.since == Self.time(9_500))
    }

    @Test("since changes only when the reported state changes, not with the reason")
    func sinceFollowsTheState() {
        var health = FeedHealth(now: Self.time(0))
        // down (starting) -> down (supplier_disconnected): the feed has been down since the start.
        health.disconnected(now: Self.time(100))
        #expect(health.since == Self.time(0))
        // down (supplier_disconnected) -> down (supplier_silent): still down since the start.
        health.silent(now: Self.time(200))
        #expect(Self.reported(health) == "down/supplier_silent")
        #expect(health.since == Self.time(0))
        // recovering -> recovering at a new target (a second hello): still recovering since the first.
        health.connected(at: Self.position(1), now: Self.time(300))
        #expect(health.since == Self.time(300))
        health.connected(at: Self.position(4), now: Self.time(400))
        #expect(health.link == .recovering(target: Self.position(4)))
        #expect(health.since == Self.time(300))
        // recovering -> up -> down: each a new state.
        _ = health.acknowledged(through: Self.position(4), now: Self.time(500))
        #expect(health.since == Self.time(500))
        health.disconnected(now: Self.time(600))
        #expect(health.since == Self.time(600))
    }

    // MARK: FeedSession and alive frames

    static let payload = Array(#"{"event_id":"MATCH_001"}"#.utf8)

    /// A session past a snapshot taken at `at` (0 markets), streaming from `at + 1`.
    static func streamingAfterSnapshot(at seq: UInt64) throws -> FeedSession {
        var session = FeedSession(requested: .snapshot)
        let hello = FeedHello(position: position(seq), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 1)
        _ = try session.accept(.hello(hello))
        _ = try session.accept(.snapshotStart(position: position(seq), markets: 1))
        _ = try session.accept(.snapshot(position: position(seq), index: 1, markets: 1, payload: payload))
        _ = try session.accept(.snapshotComplete(position: position(seq), markets: 1))
        return session
    }

    static func isViolation(_ session: inout FeedSession, _ frame: FeedFrame) -> Bool {
        do {
            _ = try session.accept(frame)
            return false
        } catch {
            return true
        }
    }

    @Test("the supplier's alive frame reads as alive at its position")
    func aliveFrameParses() throws {
        let text = FeedFrameEncoder.alive(position: Self.position(42))
        #expect(try FeedFrame.parse(Array(text.utf8)) == .alive(position: Self.position(42)))
        #expect(throws: FeedFrame.Invalid.self) { try FeedFrame.parse(Array(#"{"type":"alive","epoch":1,"seq":2,"extra":1}"#.utf8)) }
    }

    @Test("an alive at the latest position read is accepted, after a snapshot and after stream frames")
    func aliveAtLatestPosition() throws {
        var session = try Self.streamingAfterSnapshot(at: 5)
        let result11 = try session.accept(.alive(position: Self.position(5)))
        #expect(result11 == .alive(Self.position(5)))
        let result12 = try session.accept(.alive(position: Self.position(5)))
        #expect(result12 == .alive(Self.position(5)))
        let result13 = try session.accept(.odds(position: Self.position(6), payload: Self.payload))
        #expect(result13
                == .stream(Self.position(6), payload: Self.payload, replayed: false))
        let result14 = try session.accept(.alive(position: Self.position(6)))
        #expect(result14 == .alive(Self.position(6)))
        // Alive frames do not move the stream: the next stream frame is still 7.
        let result15 = try session.accept(.odds(position: Self.position(7), payload: Self.payload))
        #expect(result15
                == .stream(Self.position(7), payload: Self.payload, replayed: false))
    }

    @Test("an alive of an empty stream (seq 0) is accepted")
    func aliveOfEmptyStream() throws {
        var session = try Self.streamingAfterSnapshot(at: 0)
        let result16 = try session.accept(.alive(position: Self.position(0)))
        #expect(result16 == .alive(Self.position(0)))
    }

    @Test("an alive ahead of the next expected seq is a violation: frames were lost")
    func aliveAheadIsViolation() throws {
        var session = try Self.streamingAfterSnapshot(at: 5)
        _ = try session.accept(.odds(position: Self.position(6), payload: Self.payload))
        #expect(Self.isViolation(&session, .alive(position: Self.position(7))))
        var other = try Self.streamingAfterSnapshot(at: 5)
        #expect(Self.isViolation(&other, .alive(position: Self.position(100))))
    }

    @Test("an alive behind what was read, or of another epoch, is a violation")
    func aliveBehindOrForeignIsViolation() throws {
        var session = try Self.streamingAfterSnapshot(at: 5)
        _ = try session.accept(.odds(position: Self.position(6), payload: Self.payload))
        #expect(Self.isViolation(&session, .alive(position: Self.position(5))))
        var other = try Self.streamingAfterSnapshot(at: 5)
        #expect(Self.isViolation(&other, .alive(position: Self.position(5, epoch: Self.epoch + 1))))
    }

    @Test("an alive before the hello is a violation")
    func aliveBeforeHello() {
        for requested in [FeedStart.snapshot, .live, .after(Self.position(3))] {
            var session = FeedSession(requested: requested)
            #expect(Self.isViolation(&session, .alive(position: Self.position(3))), "requested \(requested)")
        }
    }

    @Test("an alive in the middle of a snapshot is a violation")
    func aliveDuringSnapshot() throws {
        var session = FeedSession(requested: .snapshot)
        _ = try session.accept(.hello(FeedHello(position: Self.position(5), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 1)))
        #expect(Self.isViolation(&session, .alive(position: Self.position(5))))
        var started = FeedSession(requested: .snapshot)
        _ = try started.accept(.hello(FeedHello(position: Self.position(5), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 1)))
        _ = try started.accept(.snapshotStart(position: Self.position(5), markets: 2))
        _ = try started.accept(.snapshot(position: Self.position(5), index: 1, markets: 2, payload: Self.payload))
        #expect(Self.isViolation(&started, .alive(position: Self.position(5))))
    }

    @Test("during a replay an alive is accepted only once every replayed frame arrived")
    func aliveAfterReplay() throws {
        var session = FeedSession(requested: .after(Self.position(3)))
        _ = try session.accept(.hello(FeedHello(position: Self.position(5), recovery: .replay, reason: nil, after: Self.position(3), replayLogFirstSeq: 1)))
        var early = session
        #expect(Self.isViolation(&early, .alive(position: Self.position(5))), "alive at 5 before frames 4 and 5 were replayed")
        _ = try session.accept(.odds(position: Self.position(4), payload: Self.payload))
        _ = try session.accept(.odds(position: Self.position(5), payload: Self.payload))
        let result17 = try session.accept(.alive(position: Self.position(5)))
        #expect(result17 == .alive(Self.position(5)))
    }

    @Test("after a live start an alive at the hello's position is accepted")
    func aliveAfterLiveStart() throws {
        var session = FeedSession(requested: .live)
        _ = try session.accept(.hello(FeedHello(position: Self.position(8), recovery: .live, reason: nil, after: nil, replayLogFirstSeq: 1)))
        let result18 = try session.accept(.alive(position: Self.position(8)))
        #expect(result18 == .alive(Self.position(8)))
        #expect(Self.isViolation(&session, .alive(position: Self.position(9))))
    }

    @Test("an unreadable frame uses a seq: an alive one past the last readable frame is accepted, two past is not")
    func aliveAfterUnreadable() throws {
        var session = try Self.streamingAfterSnapshot(at: 5)
        _ = try session.accept(.odds(position: Self.position(6), payload: Self.payload))
        session.noteUnreadable()  // seq 7 could not be read
        var twoAhead = session
        #expect(Self.isViolation(&twoAhead, .alive(position: Self.position(8))))
        let result19 = try session.accept(.alive(position: Self.position(7)))
        #expect(result19 == .alive(Self.position(7)))
    }
}
