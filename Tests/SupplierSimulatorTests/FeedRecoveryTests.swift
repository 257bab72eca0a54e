import Contracts
import Foundation
import IntegrationSupport
import Testing
@testable import SupplierSimulator

/// The supplier's replay log, as a plain value.
@Suite("Supplier replay log: capacity ring, age expiry, frames after a seq")
struct ReplayLogTests {
    static let origin = ContinuousClock.now

    static func frame(_ seq: UInt64) -> QueuedFrame { QueuedFrame(text: "frame-\(seq)", kind: .valid) }

    static func log(capacity: Int, maxAge: Duration = .seconds(600), seqs: ClosedRange<UInt64>) -> ReplayLog {
        var log = ReplayLog(capacity: capacity, maxAge: maxAge)
        for seq in seqs { log.append(seq: seq, frame: frame(seq), at: origin) }
        return log
    }

    static func texts(_ frames: [QueuedFrame]?) -> [String]? { frames?.map(\.text) }
    static func texts(_ seqs: ClosedRange<UInt64>) -> [String] { seqs.map { "frame-\($0)" } }

    @Test func emptyLog() {
        let log = ReplayLog(capacity: 3, maxAge: .seconds(1))
        #expect(log.count == 0)
        #expect(log.firstSeq == nil)
        #expect(Self.texts(log.frames(after: 0, latest: 0)) == [], "nothing was emitted: nothing is missing")
        #expect(log.frames(after: 0, latest: 2) == nil, "frames 1 and 2 existed but are not kept")
    }

    @Test func keepsEverythingBelowCapacity() {
        let log = Self.log(capacity: 5, seqs: 1...3)
        #expect(log.count == 3)
        #expect(log.firstSeq == 1)
        #expect(Self.texts(log.frames(after: 0, latest: 3)) == Self.texts(1...3))
        #expect(Self.texts(log.frames(after: 2, latest: 3)) == ["frame-3"])
        #expect(Self.texts(log.frames(after: 3, latest: 3)) == [])
    }

    @Test(arguments: [3, 4, 5, 6, 7, 9, 10, 30])
    func ringKeepsTheLastCapacityFrames(appended: Int) {
        let capacity = 3
        let latest = UInt64(appended)
        let log = Self.log(capacity: capacity, seqs: 1...latest)
        let first = latest - UInt64(capacity) + 1
        #expect(log.count == capacity)
        #expect(log.firstSeq == first)
        // Exactly the frames after the position, oldest first, wherever the ring's head is.
        for after in (first - 1)...latest {
            let expected = after == latest ? [] : Self.texts((after + 1)...latest)
            #expect(Self.texts(log.frames(after: after, latest: latest)) == expected, "after \(after) of \(latest)")
        }
        // Older positions are no longer covered.
        for after in 0..<(first - 1) {
            #expect(log.frames(after: after, latest: latest) == nil, "after \(after): frame \(after + 1) was dropped")
        }
    }

    @Test func ageExpiry() {
        var log = ReplayLog(capacity: 10, maxAge: .seconds(10))
        log.append(seq: 1, frame: Self.frame(1), at: Self.origin)
        log.append(seq: 2, frame: Self.frame(2), at: Self.origin + .seconds(5))
        log.append(seq: 3, frame: Self.frame(3), at: Self.origin + .seconds(12))
        log.expire(now: Self.origin + .seconds(10))
        #expect(log.firstSeq == 1, "exactly maxAge old is still kept")
        log.expire(now: Self.origin + .seconds(12))
        #expect(log.firstSeq == 2)
        #expect(log.count == 2)
        #expect(log.frames(after: 0, latest: 3) == nil)
        #expect(Self.texts(log.frames(after: 1, latest: 3)) == Self.texts(2...3))
        log.expire(now: Self.origin + .seconds(100))
        #expect(log.count == 0)
        #expect(log.firstSeq == nil)
        #expect(log.frames(after: 2, latest: 3) == nil)
        #expect(Self.texts(log.frames(after: 3, latest: 3)) == [])
        log.append(seq: 4, frame: Self.frame(4), at: Self.origin + .seconds(100))
        #expect(log.firstSeq == 4)
        #expect(Self.texts(log.frames(after: 3, latest: 4)) == ["frame-4"])
    }

    @Test func ageExpiryAfterTheRingWrapped() {
        var log = ReplayLog(capacity: 4, maxAge: .seconds(10))
        for seq in UInt64(1)...6 { log.append(seq: seq, frame: Self.frame(seq), at: Self.origin + .seconds(Int64(seq))) }
        #expect(log.firstSeq == 3)
        log.expire(now: Self.origin + .seconds(15))  // drops 3 and 4 (12 and 11 s old)
        #expect(log.firstSeq == 5)
        #expect(Self.texts(log.frames(after: 4, latest: 6)) == Self.texts(5...6))
        for seq in UInt64(7)...12 { log.append(seq: seq, frame: Self.frame(seq), at: Self.origin + .seconds(15)) }
        #expect(log.count == 4)
        #expect(log.firstSeq == 9)
        #expect(Self.texts(log.frames(after: 8, latest: 12)) == Self.texts(9...12))
        #expect(log.frames(after: 7, latest: 12) == nil)
    }
}

/// What a connecting client gets before live frames: hello, then a replay or a snapshot.
@Suite("Supplier feed hub: recovery (hello, replay, snapshot, live)")
struct FeedRecoveryTests {
    static let epoch = FeedHubTests.epoch
    static func at(_ seq: UInt64) -> FeedPosition { FeedPosition(epoch: epoch, seq: seq) }

    static func frame(_ kind: FrameKind, _ text: String, market: Int) -> EmittedFrame {
        EmittedFrame(kind: kind, text: text, expectedReason: nil, market: market)
    }

    static func parse(_ batch: [QueuedFrame]) throws -> [FeedFrame] {
        try batch.map { try FeedFrame.parse(Array($0.text.utf8)) }
    }

    /// The frames queued for `subscriber` right now (nothing when its buffer is empty).
    static func queued(_ subscriber: FeedSubscriber) async throws -> [FeedFrame] {
        guard subscriber.bufferedCount > 0 else { return [] }
        guard case .write(let batch) = await subscriber.nextStep() else {
            Issue.record("expected queued frames")
            return []
        }
        return try parse(batch)
    }

    /// Everything queued for `subscriber` until its close (call after `drainAll`).
    static func everything(_ subscriber: FeedSubscriber) async throws -> [FeedFrame] {
        var frames: [FeedFrame] = []
        while true {
            switch await subscriber.nextStep() {
            case .write(let batch): frames += try parse(batch)
            case .close, .stop: return frames
            }
        }
    }

    static func hello(_ frames: [FeedFrame]) -> FeedHello? {
        guard case .hello(let hello)? = frames.first else { return nil }
        return hello
    }

    static func oddsSeqs(_ frames: [FeedFrame]) -> [UInt64] {
        frames.compactMap { if case .odds(let position, _) = $0 { position.seq } else { nil } }
    }

    static func oddsPayloads(_ frames: [FeedFrame]) -> [String] {
        frames.compactMap { if case .odds(_, let payload) = $0 { String(decoding: payload, as: UTF8.self) } else { nil } }
    }

    /// A hub with `count` stream frames emitted (a live client must be connected for the feed to
    /// move: it is returned too).
    static func hub(emitted count: Int, replayCapacity: Int = 1_000, book: [String] = ["book-0", "book-1"]) -> (FeedHub, FeedSubscriber) {
        let hub = FeedHubTests.hub(capacity: 10_000, journal: nil, replayCapacity: replayCapacity, book: book)
        let keeper = hub.connect(remoteAddress: "keeper", start: .live, abortConnection: {})
        if count > 0 { #expect(hub.broadcast(FeedHubTests.frames(count))) }
        return (hub, keeper)
    }

    @Test func helloOnAnEmptyStream() async throws {
        let hub = FeedHubTests.hub(capacity: 100, journal: nil)
        let live = hub.connect(remoteAddress: "a", start: .live, abortConnection: {})
        #expect(Self.hello(try await Self.queued(live)) == FeedHello(position: Self.at(0), recovery: .live, reason: nil, after: nil,
                                                                         replayLogFirstSeq: 0))
        let resumed = hub.connect(remoteAddress: "b", start: .after(Self.at(0)), abortConnection: {})
        let frames = try await Self.queued(resumed)
        #expect(frames == [.hello(FeedHello(position: Self.at(0), recovery: .replay, reason: nil, after: Self.at(0), replayLogFirstSeq: 0))])
    }

    @Test func liveStartGetsOnlyNewFrames() async throws {
        let (hub, _) = Self.hub(emitted: 5)
        let client = hub.connect(remoteAddress: "live", start: .live, abortConnection: {})
        let opening = try await Self.queued(client)
        #expect(opening == [.hello(FeedHello(position: Self.at(5), recovery: .live, reason: nil, after: nil, replayLogFirstSeq: 1))])
        #expect(hub.broadcast(FeedHubTests.frames(2, from: 5)))
        let next = try await Self.queued(client)
        #expect(Self.oddsSeqs(next) == [6, 7])
        #expect(Self.oddsPayloads(next) == ["frame-5", "frame-6"])
    }

    @Test(arguments: [0, 1, 2, 4, 5])
    func resumeReplaysExactlyTheFramesAfterThePosition(after: UInt64) async throws {
        let (hub, _) = Self.hub(emitted: 5)
        let client = hub.connect(remoteAddress: "resume", start: .after(Self.at(after)), abortConnection: {})
        // A broadcast right after the connect, before the writer took anything.
        #expect(hub.broadcast(FeedHubTests.frames(2, from: 5)))
        let frames = try await Self.queued(client)
        #expect(Self.hello(frames) == FeedHello(position: Self.at(5), recovery: .replay, reason: nil, after: Self.at(after), replayLogFirstSeq: 1))
        #expect(frames.dropFirst().allSatisfy { if case .odds = $0 { true } else { false } }, "only stream frames after the hello")
        #expect(Self.oddsSeqs(frames) == Array((after + 1)...7))
        #expect(Self.oddsPayloads(frames) == ((Int(after))..<7).map { "frame-\($0)" })
    }

    @Test func resumeAtTheOldestKeptFrame() async throws {
        let (hub, _) = Self.hub(emitted: 10, replayCapacity: 3)  // keeps 8, 9, 10
        let covered = hub.connect(remoteAddress: "a", start: .after(Self.at(7)), abortConnection: {})
        let frames = try await Self.queued(covered)
        #expect(Self.hello(frames)?.recovery == .replay)
        #expect(Self.hello(frames)?.replayLogFirstSeq == 8)
        #expect(Self.oddsSeqs(frames) == [8, 9, 10])
        let old = hub.connect(remoteAddress: "b", start: .after(Self.at(6)), abortConnection: {})
        let snapshot = try await Self.queued(old)
        #expect(Self.hello(snapshot) == FeedHello(position: Self.at(10), recovery: .snapshot, reason: .tooOld, after: Self.at(6), replayLogFirstSeq: 8))
    }

    /// Connects race with broadcasts: every client still sees consecutive seqs from its position on.
    @Test func noGapOrRepeatWhileTheFeedRuns() async throws {
        let hub = FeedHubTests.hub(capacity: 100_000, journal: nil, replayCapacity: 100_000)
        _ = hub.connect(remoteAddress: "keeper", start: .live, abortConnection: {})
        let total = 3_000
        let feeding = Task.detached {
            for index in 0..<total { hub.broadcast(FeedHubTests.frames(1, from: index)) }
        }
        var clients: [(start: FeedStart, subscriber: FeedSubscriber)] = []
        for round in 0..<60 {
            let seen = hub.emittedCount
            let start: FeedStart = switch round % 3 {
            case 0: .after(Self.at(seen))
            case 1: .after(Self.at(seen / 2))
            default: .live
            }
            clients.append((start, hub.connect(remoteAddress: "client-\(round)", start: start, abortConnection: {})))
            await Task.yield()
        }
        try await TestInfrastructure.value(of: feeding, "the broadcasting task to finish", timeout: .seconds(60))
        hub.drainAll(reason: "done")
        for (start, subscriber) in clients {
            let frames = try await Self.everything(subscriber)
            let hello = try #require(Self.hello(frames), "\(start): the first frame is a hello")
            let first: UInt64 = switch start {
            case .after(let position): position.seq + 1
            default: hello.position.seq + 1
            }
            #expect(Self.oddsSeqs(frames) == (first <= UInt64(total) ? Array(first...UInt64(total)) : []), "\(start), hello at \(hello.position)")
            #expect(Self.oddsPayloads(frames) == Self.oddsSeqs(frames).map { "frame-\($0 - 1)" })
        }
    }

    static let book = ["book-0", "book-1", "book-2"]

    /// The stream used by the snapshot tests: only valid frames move the book.
    static let moves: [EmittedFrame] = [
        frame(.valid, "m0-v1", market: 0),
        frame(.duplicate, "m0-v1", market: 0),
        frame(.malformed, "{\"market", market: 1),
        frame(.invalid, "m2-bad-price", market: 2),
        frame(.valid, "m0-v2", market: 0),
        frame(.outOfOrder, "m0-v1", market: 0),
        frame(.valid, "m2-v1", market: 2),
        frame(.invalid, "m0-bad-price", market: 0),
    ]

    static func expectSnapshot(_ frames: [FeedFrame], at seq: UInt64, markets expected: [String], hello expectedHello: FeedHello,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let position = Self.at(seq)
        var wanted: [FeedFrame] = [.hello(expectedHello), .snapshotStart(position: position, markets: expected.count)]
        for (offset, payload) in expected.enumerated() {
            wanted.append(.snapshot(position: position, index: offset + 1, markets: expected.count, payload: Array(payload.utf8)))
        }
        wanted.append(.snapshotComplete(position: position, markets: expected.count))
        #expect(frames == wanted, sourceLocation: sourceLocation)
    }

    @Test func snapshotOfAStreamThatHasNotMoved() async throws {
        let hub = FeedHubTests.hub(capacity: 100, journal: nil, book: Self.book)
        let client = hub.connect(remoteAddress: "a", start: .snapshot, abortConnection: {})
        Self.expectSnapshot(try await Self.queued(client), at: 0, markets: Self.book,
                            hello: FeedHello(position: Self.at(0), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 0))
    }

    @Test func snapshotHoldsTheLatestValidPayloadPerMarket() async throws {
        let (hub, _) = Self.hub(emitted: 0, book: Self.book)
        #expect(hub.broadcast(Array(Self.moves.prefix(6))))
        let early = hub.connect(remoteAddress: "early", start: .snapshot, abortConnection: {})
        Self.expectSnapshot(try await Self.queued(early), at: 6, markets: ["m0-v2", "book-1", "book-2"],
                            hello: FeedHello(position: Self.at(6), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 1))
        #expect(hub.broadcast(Array(Self.moves.dropFirst(6))))
        let late = hub.connect(remoteAddress: "late", start: .snapshot, abortConnection: {})
        Self.expectSnapshot(try await Self.queued(late), at: 8, markets: ["m0-v2", "book-1", "m2-v1"],
                            hello: FeedHello(position: Self.at(8), recovery: .snapshot, reason: .requested, after: nil, replayLogFirstSeq: 1))
        // The early client's live frames continue right after its snapshot.
        #expect(Self.oddsSeqs(try await Self.queued(early)) == [7, 8])
    }

    @Test(arguments: [SnapshotReason.requested, .unknownEpoch, .tooOld, .ahead])
    func snapshotForEachReason(reason: SnapshotReason) async throws {
        let (hub, _) = Self.hub(emitted: 0, replayCapacity: 4, book: Self.book)
        #expect(hub.broadcast(Self.moves))  // seqs 1...8; the log keeps 5...8
        let start: FeedStart
        let asked: FeedPosition?
        switch reason {
        case .requested: (start, asked) = (.snapshot, nil)
        case .unknownEpoch: (start, asked) = (.after(FeedPosition(epoch: Self.epoch + 1, seq: 3)), FeedPosition(epoch: Self.epoch + 1, seq: 3))
        case .tooOld: (start, asked) = (.after(Self.at(3)), Self.at(3))
        case .ahead: (start, asked) = (.after(Self.at(9)), Self.at(9))
        }
        let client = hub.connect(remoteAddress: "a", start: start, abortConnection: {})
        #expect(hub.broadcast([Self.frame(.valid, "m1-v1", market: 1)]))
        let frames = try await Self.queued(client)
        let opening = Array(frames.prefix(Self.book.count + 3))
        Self.expectSnapshot(opening, at: 8, markets: ["m0-v2", "book-1", "m2-v1"],
                            hello: FeedHello(position: Self.at(8), recovery: .snapshot, reason: reason, after: asked, replayLogFirstSeq: 5))
        #expect(Array(frames.dropFirst(opening.count)) == [.odds(position: Self.at(9), payload: Array("m1-v1".utf8))])
    }

    @Test func anOlderEpochIsUnknown() async throws {
        let (hub, _) = Self.hub(emitted: 3)
        let older = hub.connect(remoteAddress: "a", start: .after(FeedPosition(epoch: Self.epoch - 1, seq: 1)), abortConnection: {})
        #expect(Self.hello(try await Self.queued(older))?.reason == .unknownEpoch)
    }
}
