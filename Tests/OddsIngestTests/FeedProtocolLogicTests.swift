import Contracts
import Kafka
import Testing
@testable import OddsIngest

/// odds-feed/2 on ingest's side, without I/O: the per-connection protocol rules (FeedSession), the
/// claim that Kafka holds the feed up to a position (ResumeTracker), and where a restarted ingest
/// resumes (ResumePoint).
@Suite struct FeedProtocolLogicTests {
    static let epoch: UInt64 = 1_795_341_492_345_678
    static func at(_ seq: UInt64, epoch: UInt64 = epoch) -> FeedPosition { FeedPosition(epoch: epoch, seq: seq) }
    static func payload(_ seq: UInt64) -> [UInt8] { Array("update-\(seq)".utf8) }
    static func odds(_ seq: UInt64, epoch: UInt64 = epoch) -> FeedFrame { .odds(position: at(seq, epoch: epoch), payload: payload(seq)) }

    static func hello(_ recovery: FeedRecovery, at seq: UInt64, reason: SnapshotReason? = nil, after: FeedPosition? = nil) -> FeedFrame {
        .hello(FeedHello(position: at(seq), recovery: recovery, reason: reason, after: after, replayLogFirstSeq: 1))
    }

    /// Feeds `frames` to a session for `requested`; returns the session and its steps.
    static func session(_ requested: FeedStart, _ frames: [FeedFrame]) throws -> (FeedSession, [FeedSession.Step]) {
        var session = FeedSession(requested: requested)
        var steps: [FeedSession.Step] = []
        for frame in frames { steps.append(try session.accept(frame)) }
        return (session, steps)
    }

    /// Expects the frames before the last to be accepted and the last one to be a violation.
    static func expectViolation(_ requested: FeedStart, _ frames: [FeedFrame], _ what: Comment,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        var session = FeedSession(requested: requested)
        for (offset, frame) in frames.enumerated() {
            do {
                _ = try session.accept(frame)
                if offset == frames.count - 1 { Issue.record("accepted: \(what)", sourceLocation: sourceLocation) }
            } catch {
                if offset != frames.count - 1 {
                    Issue.record("frame \(offset) rejected before the one under test (\(what)): \(error)", sourceLocation: sourceLocation)
                }
                return
            }
        }
    }

    // MARK: FeedSession, happy paths

    @Test func replayThenLive() throws {
        let asked = Self.at(5)
        let (_, steps) = try Self.session(.after(asked), [
            Self.hello(.replay, at: 8, after: asked), Self.odds(6), Self.odds(7), Self.odds(8), Self.odds(9), Self.odds(10),
        ])
        guard case .hello(let hello) = steps.first else { Issue.record("first step \(steps)"); return }
        #expect(hello.recovery == .replay && hello.after == asked)
        #expect(Array(steps.dropFirst()) == [
            .stream(Self.at(6), payload: Self.payload(6), replayed: true),
            .stream(Self.at(7), payload: Self.payload(7), replayed: true),
            .stream(Self.at(8), payload: Self.payload(8), replayed: true),
            .stream(Self.at(9), payload: Self.payload(9), replayed: false),
            .stream(Self.at(10), payload: Self.payload(10), replayed: false),
        ])
    }

    @Test func replayWithNothingMissed() throws {
        let asked = Self.at(8)
        let (_, steps) = try Self.session(.after(asked), [Self.hello(.replay, at: 8, after: asked), Self.odds(9)])
        #expect(steps.last == .stream(Self.at(9), payload: Self.payload(9), replayed: false))
        Self.expectViolation(.after(asked), [Self.hello(.replay, at: 8, after: asked), Self.odds(8)], "a repeat of the asked position")
    }

    @Test func snapshotThenLive() throws {
        let (_, steps) = try Self.session(.snapshot, [
            Self.hello(.snapshot, at: 10, reason: .requested),
            .snapshotStart(position: Self.at(10), markets: 2),
            .snapshot(position: Self.at(10), index: 1, markets: 2, payload: Array("m1".utf8)),
            .snapshot(position: Self.at(10), index: 2, markets: 2, payload: Array("m2".utf8)),
            .snapshotComplete(position: Self.at(10), markets: 2),
            Self.odds(11), Self.odds(12),
        ])
        #expect(Array(steps.dropFirst()) == [
            .snapshotStart(Self.at(10), markets: 2),
            .snapshotMarket(Self.at(10), payload: Array("m1".utf8)),
            .snapshotMarket(Self.at(10), payload: Array("m2".utf8)),
            .snapshotComplete(Self.at(10)),
            .stream(Self.at(11), payload: Self.payload(11), replayed: false),
            .stream(Self.at(12), payload: Self.payload(12), replayed: false),
        ])
    }

    @Test(arguments: [SnapshotReason.unknownEpoch, .tooOld, .ahead])
    func resumeAnsweredWithSnapshot(reason: SnapshotReason) throws {
        let asked = Self.at(3, epoch: reason == .unknownEpoch ? Self.epoch - 1 : Self.epoch)
        let (_, steps) = try Self.session(.after(asked), [
            Self.hello(.snapshot, at: 0, reason: reason, after: asked),
            .snapshotStart(position: Self.at(0), markets: 1),
            .snapshot(position: Self.at(0), index: 1, markets: 1, payload: Array("m".utf8)),
            .snapshotComplete(position: Self.at(0), markets: 1),
            Self.odds(1),
        ])
        #expect(steps.last == .stream(Self.at(1), payload: Self.payload(1), replayed: false))
    }

    @Test func emptySnapshot() throws {
        let (_, steps) = try Self.session(.snapshot, [
            Self.hello(.snapshot, at: 4, reason: .requested),
            .snapshotStart(position: Self.at(4), markets: 0),
            .snapshotComplete(position: Self.at(4), markets: 0),
            Self.odds(5),
        ])
        #expect(steps.count == 4)
        #expect(steps[2] == .snapshotComplete(Self.at(4)))
    }

    @Test func liveFromTheNextFrame() throws {
        let (_, steps) = try Self.session(.live, [Self.hello(.live, at: 3), Self.odds(4), Self.odds(5)])
        #expect(Array(steps.dropFirst()) == [
            .stream(Self.at(4), payload: Self.payload(4), replayed: false),
            .stream(Self.at(5), payload: Self.payload(5), replayed: false),
        ])
        let (_, fromEmpty) = try Self.session(.live, [Self.hello(.live, at: 0), Self.odds(1)])
        #expect(fromEmpty.last == .stream(Self.at(1), payload: Self.payload(1), replayed: false))
    }

    // MARK: FeedSession, violations

    @Test func firstFrameMustBeHello() {
        Self.expectViolation(.live, [Self.odds(1)], "an odds frame first")
        Self.expectViolation(.snapshot, [.snapshotStart(position: Self.at(0), markets: 1)], "a snapshot_start first")
        Self.expectViolation(.snapshot, [.snapshot(position: Self.at(0), index: 1, markets: 1, payload: [])], "a snapshot first")
        Self.expectViolation(.snapshot, [.snapshotComplete(position: Self.at(0), markets: 0)], "a snapshot_complete first")
        Self.expectViolation(.live, [Self.hello(.live, at: 0), Self.hello(.live, at: 0)], "a second hello")
        Self.expectViolation(.live, [Self.hello(.live, at: 0), Self.odds(1), Self.hello(.live, at: 1)], "a hello mid-stream")
    }

    @Test func helloMustAnswerTheRequest() {
        let asked = Self.at(5)
        Self.expectViolation(.live, [Self.hello(.snapshot, at: 5, reason: .requested)], "live asked, snapshot answered")
        Self.expectViolation(.live, [Self.hello(.replay, at: 5, after: asked)], "live asked, replay answered")
        Self.expectViolation(.snapshot, [Self.hello(.live, at: 5)], "snapshot asked, live answered")
        Self.expectViolation(.snapshot, [Self.hello(.replay, at: 5, after: asked)], "snapshot asked, replay answered")
        Self.expectViolation(.after(asked), [Self.hello(.live, at: 5)], "resume asked, live answered")
        Self.expectViolation(.after(asked), [Self.hello(.replay, at: 9, after: Self.at(4))], "replay after another position")
        Self.expectViolation(.after(asked), [Self.hello(.replay, at: 4, after: asked)], "replay after a position beyond the stream")
        Self.expectViolation(.after(Self.at(5, epoch: Self.epoch - 1)),
                             [.hello(FeedHello(position: Self.at(9), recovery: .replay, reason: nil,
                                               after: Self.at(5, epoch: Self.epoch - 1), replayLogFirstSeq: 1))],
                             "replay of another epoch")
    }

    @Test func streamFramesMustBeConsecutive() {
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(5)], "a gap after the hello")
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(4), Self.odds(6)], "a gap")
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(4), Self.odds(4)], "a repeat")
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(4), Self.odds(3)], "going back")
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(3)], "the hello's own position")
        let asked = Self.at(5)
        Self.expectViolation(.after(asked), [Self.hello(.replay, at: 8, after: asked), Self.odds(7)], "a replay that skips its first frame")
    }

    @Test func streamFramesMustKeepTheEpoch() {
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(4, epoch: Self.epoch + 1)], "another epoch")
        Self.expectViolation(.live, [Self.hello(.live, at: 3), Self.odds(4), Self.odds(5, epoch: Self.epoch - 1)], "an older epoch")
        Self.expectViolation(.snapshot, [
            Self.hello(.snapshot, at: 2, reason: .requested), .snapshotStart(position: Self.at(2), markets: 0),
            .snapshotComplete(position: Self.at(2), markets: 0), Self.odds(3, epoch: Self.epoch + 1),
        ], "another epoch after a snapshot")
    }

    @Test func snapshotFramesInOrder() {
        let opening: [FeedFrame] = [Self.hello(.snapshot, at: 10, reason: .requested), .snapshotStart(position: Self.at(10), markets: 3)]
        let market = { (index: Int) -> FeedFrame in .snapshot(position: Self.at(10), index: index, markets: 3, payload: []) }
        Self.expectViolation(.snapshot, opening + [market(2)], "index 2 first")
        Self.expectViolation(.snapshot, opening + [market(1), market(1)], "index 1 twice")
        Self.expectViolation(.snapshot, opening + [market(1), market(3)], "index 2 skipped")
        Self.expectViolation(.snapshot, opening + [.snapshot(position: Self.at(9), index: 1, markets: 3, payload: [])], "another position")
        Self.expectViolation(.snapshot, opening + [.snapshot(position: Self.at(10), index: 1, markets: 4, payload: [])], "another market count")
        Self.expectViolation(.snapshot, opening + [market(1), Self.odds(11)], "a stream frame inside the snapshot")
        Self.expectViolation(.snapshot, [Self.hello(.snapshot, at: 10, reason: .requested), .snapshotStart(position: Self.at(9), markets: 3)],
                             "snapshot_start at another position than the hello's")
        Self.expectViolation(.snapshot, [Self.hello(.snapshot, at: 10, reason: .requested), market(1)], "a snapshot frame before snapshot_start")
        Self.expectViolation(.snapshot, [Self.hello(.snapshot, at: 10, reason: .requested), Self.odds(11)], "odds before the snapshot")
        Self.expectViolation(.snapshot, opening + [.snapshotStart(position: Self.at(10), markets: 3)], "snapshot_start twice")
    }

    @Test func snapshotCompleteOnlyAfterEveryMarket() {
        let opening: [FeedFrame] = [Self.hello(.snapshot, at: 10, reason: .requested), .snapshotStart(position: Self.at(10), markets: 2)]
        let market = { (index: Int) -> FeedFrame in .snapshot(position: Self.at(10), index: index, markets: 2, payload: []) }
        Self.expectViolation(.snapshot, opening + [.snapshotComplete(position: Self.at(10), markets: 2)], "complete before any market")
        Self.expectViolation(.snapshot, opening + [market(1), .snapshotComplete(position: Self.at(10), markets: 2)], "complete after 1 of 2")
        Self.expectViolation(.snapshot, opening + [market(1), market(2), .snapshotComplete(position: Self.at(11), markets: 2)], "complete at another position")
        Self.expectViolation(.snapshot, opening + [market(1), market(2), .snapshotComplete(position: Self.at(10), markets: 1)], "complete with another count")
        Self.expectViolation(.snapshot, [Self.hello(.snapshot, at: 10, reason: .requested), .snapshotComplete(position: Self.at(10), markets: 0)],
                             "complete without snapshot_start")
        Self.expectViolation(.live, [Self.hello(.live, at: 3), .snapshotComplete(position: Self.at(3), markets: 0)], "complete on a live connection")
    }

    @Test func anUnreadableFrameMaySkipOneSeq() throws {
        var session = FeedSession(requested: .live)
        _ = try session.accept(Self.hello(.live, at: 3))
        session.noteUnreadable()
        #expect(try session.accept(Self.odds(5)) == .stream(Self.at(5), payload: Self.payload(5), replayed: false))
        // The allowance is used up by the frame that followed it.
        #expect(throws: FeedSession.Violation.self) { try session.accept(Self.odds(7)) }

        // An unreadable frame that was not a stream frame: the next seq may follow directly.
        var direct = FeedSession(requested: .live)
        _ = try direct.accept(Self.hello(.live, at: 3))
        direct.noteUnreadable()
        #expect(try direct.accept(Self.odds(4)) == .stream(Self.at(4), payload: Self.payload(4), replayed: false))
        #expect(throws: FeedSession.Violation.self) { try direct.accept(Self.odds(6)) }

        // One unreadable frame allows one skipped seq, not two; two allow two.
        var one = FeedSession(requested: .live)
        _ = try one.accept(Self.hello(.live, at: 3))
        one.noteUnreadable()
        #expect(throws: FeedSession.Violation.self) { try one.accept(Self.odds(6)) }
        var two = FeedSession(requested: .live)
        _ = try two.accept(Self.hello(.live, at: 3))
        two.noteUnreadable()
        two.noteUnreadable()
        #expect(try two.accept(Self.odds(6)) == .stream(Self.at(6), payload: Self.payload(6), replayed: false))
        // Never backwards, even with an allowance.
        var back = FeedSession(requested: .live)
        _ = try back.accept(Self.hello(.live, at: 3))
        _ = try back.accept(Self.odds(4))
        back.noteUnreadable()
        #expect(throws: FeedSession.Violation.self) { try back.accept(Self.odds(4)) }
    }

    @Test func anUnreadableFrameDuringReplay() throws {
        let asked = Self.at(5)
        var session = FeedSession(requested: .after(asked))
        _ = try session.accept(Self.hello(.replay, at: 8, after: asked))
        session.noteUnreadable()
        #expect(try session.accept(Self.odds(7)) == .stream(Self.at(7), payload: Self.payload(7), replayed: true))
        #expect(try session.accept(Self.odds(8)) == .stream(Self.at(8), payload: Self.payload(8), replayed: true))
        #expect(try session.accept(Self.odds(9)) == .stream(Self.at(9), payload: Self.payload(9), replayed: false))
    }

    // MARK: ResumeTracker

    @Test func claimAdvancesOverDonePrefixOnly() {
        var tracker = ResumeTracker(claim: nil)
        let tickets = (1...4).map { tracker.add(claim: Self.at(UInt64($0))) }
        #expect(tickets == [0, 1, 2, 3])
        #expect(tracker.claim == nil)
        #expect(tracker.outstanding == 4)
        tracker.markDone(tickets[0])
        #expect(tracker.claim == Self.at(1))
        tracker.markDone(tickets[2])
        #expect(tracker.claim == Self.at(1), "entry 2 is not done: the claim stays at 1")
        tracker.markDone(tickets[1])
        #expect(tracker.claim == Self.at(3))
        #expect(tracker.outstanding == 1)
        tracker.markDone(tickets[3])
        #expect(tracker.claim == Self.at(4))
        #expect(tracker.outstanding == 0)
    }

    @Test func outOfOrderAcks() {
        var tracker = ResumeTracker(claim: Self.at(10))
        let tickets = (11...15).map { tracker.add(claim: Self.at(UInt64($0))) }
        for ticket in tickets.reversed().dropLast() {
            tracker.markDone(ticket)
            #expect(tracker.claim == Self.at(10), "the oldest entry is not done")
        }
        tracker.markDone(tickets[0])
        #expect(tracker.claim == Self.at(15))
        // Acks again, or for tickets never given, change nothing.
        tracker.markDone(tickets[2])
        tracker.markDone(999)
        #expect(tracker.claim == Self.at(15))
        #expect(tracker.outstanding == 0)
    }

    @Test func snapshotCompleteIsDoneAtOnce() {
        var tracker = ResumeTracker(claim: Self.at(3))
        let stream = tracker.add(claim: Self.at(4))
        let markets = (0..<3).map { _ in tracker.add(claim: nil) }
        _ = tracker.add(claim: Self.at(20), done: true)
        #expect(tracker.claim == Self.at(3), "done at once, but the entries before it are not")
        tracker.markDone(markets[2])
        tracker.markDone(markets[0])
        tracker.markDone(stream)
        #expect(tracker.claim == Self.at(4))
        tracker.markDone(markets[1])
        #expect(tracker.claim == Self.at(20))
        #expect(tracker.outstanding == 0)

        // With nothing pending, an entry done at once is the claim at once.
        var idle = ResumeTracker(claim: nil)
        _ = idle.add(claim: Self.at(7), done: true)
        #expect(idle.claim == Self.at(7))
        #expect(idle.outstanding == 0)
    }

    @Test func nilClaimsKeepThePreviousOne() {
        var tracker = ResumeTracker(claim: Self.at(2))
        let first = tracker.add(claim: nil)
        let second = tracker.add(claim: nil)
        tracker.markDone(second)
        tracker.markDone(first)
        #expect(tracker.claim == Self.at(2))
        var empty = ResumeTracker(claim: nil)
        empty.markDone(empty.add(claim: nil))
        #expect(empty.claim == nil)
    }

    @Test func ticketsStayValidAcrossCompaction() {
        var tracker = ResumeTracker(claim: nil)
        var tickets: [ResumeTracker.Ticket] = []
        for seq in 1...10_000 { tickets.append(tracker.add(claim: Self.at(UInt64(seq)))) }
        for ticket in tickets.prefix(9_000) { tracker.markDone(ticket) }
        #expect(tracker.claim == Self.at(9_000))
        let more = (10_001...10_010).map { tracker.add(claim: Self.at(UInt64($0))) }
        #expect(more.first == 10_000)
        for ticket in (tickets.dropFirst(9_000) + more).reversed() { tracker.markDone(ticket) }
        #expect(tracker.claim == Self.at(10_010))
        #expect(tracker.outstanding == 0)
        tracker.markDone(tickets[5])  // long folded: ignored
        #expect(tracker.claim == Self.at(10_010))
    }

    @Test func feedProgressSharesTheTracker() {
        let progress = FeedProgress(claim: nil)
        let ticket = progress.add(claim: Self.at(1))
        #expect(progress.claim == nil)
        progress.markDone(ticket)
        #expect(progress.claim == Self.at(1))
        progress.reset(claim: Self.at(5, epoch: Self.epoch + 1))
        #expect(progress.claim == Self.at(5, epoch: Self.epoch + 1))
    }

    // MARK: ResumePoint

    static func message(partition: Int32 = 0, offset: Int64 = 0, headers: [KafkaHeader]) -> KafkaConsumerMessage {
        KafkaConsumerMessage(topic: "odds_updates", partition: partition, offset: offset, key: Array("MATCH_001".utf8),
                             value: Array("{}".utf8), headers: headers, timestampMilliseconds: nil)
    }

    static func claimHeader(_ text: String) -> KafkaHeader { KafkaHeader(key: FeedHeaders.resumeAfter, value: text) }

    @Test func greatestClaimPicksEpochThenSeq() {
        let messages = [
            Self.message(offset: 1, headers: [Self.claimHeader("\(Self.epoch):900")]),
            Self.message(partition: 1, offset: 7, headers: [Self.claimHeader("\(Self.epoch + 1):3")]),
            Self.message(partition: 2, offset: 3, headers: [Self.claimHeader("\(Self.epoch + 1):2")]),
            Self.message(partition: 3, offset: 4, headers: [Self.claimHeader("\(Self.epoch):1000")]),
        ]
        #expect(ResumePoint.greatestClaim(in: messages) == Self.at(3, epoch: Self.epoch + 1))
        #expect(ResumePoint.greatestClaim(in: messages.reversed()) == Self.at(3, epoch: Self.epoch + 1))
        #expect(ResumePoint.greatestClaim(in: Array(messages.prefix(1)) + [messages[3]]) == Self.at(1000))
    }

    @Test func messagesWithoutAClaimAreIgnored() {
        let noHeaders = Self.message(headers: [])
        let otherHeaders = Self.message(headers: [
            KafkaHeader(key: FeedHeaders.epoch, value: "\(Self.epoch + 5)"), KafkaHeader(key: FeedHeaders.seq, value: "77"),
        ])
        let garbage = ["", "garbage", "\(Self.epoch + 9)", "\(Self.epoch + 9):", "0:5", "\(Self.epoch + 9):-1", "\(Self.epoch + 9):1:2",
                       " \(Self.epoch + 9):1", "\(Self.epoch + 9):1\n"].map { Self.message(headers: [Self.claimHeader($0)]) }
        let binary = Self.message(headers: [KafkaHeader(key: FeedHeaders.resumeAfter, value: [0xFF, 0xFE, 0x3A, 0x31])])
        #expect(ResumePoint.greatestClaim(in: []) == nil)
        #expect(ResumePoint.greatestClaim(in: [noHeaders, otherHeaders, binary] + garbage) == nil)
        let good = Self.message(offset: 9, headers: [KafkaHeader(key: FeedHeaders.epoch, value: "\(Self.epoch)"),
                                                     Self.claimHeader("\(Self.epoch):12")])
        #expect(ResumePoint.greatestClaim(in: garbage + [noHeaders, good, otherHeaders, binary]) == Self.at(12))
    }
}
