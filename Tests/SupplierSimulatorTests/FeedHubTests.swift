import Foundation
import Logging
import Synchronization
import Contracts
import IntegrationSupport
import Testing
@testable import SupplierSimulator

@Suite("Supplier feed hub: client buffers, journal, slow clients, draining")
struct FeedHubTests {
    static func frames(_ count: Int, from start: Int = 0) -> [EmittedFrame] {
        (start..<(start + count)).map { EmittedFrame(kind: .valid, text: "frame-\($0)", expectedReason: nil) }
    }

    static let epoch: UInt64 = 7

    static func hub(capacity: Int, journal: Journal?, replayCapacity: Int = 1_000, book: [String] = ["book-0", "book-1"]) -> FeedHub {
        FeedHub(epoch: epoch, book: book, replayLog: ReplayLog(capacity: replayCapacity, maxAge: .seconds(600)),
                clientBufferCapacity: capacity, journal: journal, metrics: SupplierMetrics(), logger: Logger(label: "test"))
    }

    /// The payloads of the stream frames in `batch` (hello and snapshot frames left out).
    static func payloads(_ batch: [QueuedFrame]) -> [String] {
        batch.compactMap { frame in
            guard case .odds(_, let payload)? = try? FeedFrame.parse(Array(frame.text.utf8)) else { return nil }
            return String(decoding: payload, as: UTF8.self)
        }
    }

    static func journalPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("hub-journal-\(UUID().uuidString).jsonl").path
    }

    @Test("nothing is journaled or queued while nobody is connected")
    func noClientsNoFeed() throws {
        let path = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = try Journal(path: path)
        let hub = Self.hub(capacity: 10, journal: journal)
        #expect(hub.broadcast(Self.frames(3)) == false)
        journal.flush()
        #expect(try String(contentsOfFile: path, encoding: .utf8).isEmpty)
        #expect(hub.emittedCount == 0)
    }

    @Test("every client gets every frame in journal order")
    func broadcastAndJournal() async throws {
        let path = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let journal = try Journal(path: path)
        let hub = Self.hub(capacity: 100, journal: journal)
        let first = hub.connect(remoteAddress: "a", abortConnection: {})
        let second = hub.connect(remoteAddress: "b", abortConnection: {})
        #expect(hub.broadcast(Self.frames(3)))
        #expect(hub.broadcast(Self.frames(2, from: 3)))
        for subscriber in [first, second] {
            guard case .write(let batch) = await subscriber.nextStep() else {
                Issue.record("expected frames")
                return
            }
            #expect(Self.payloads(batch) == (0..<5).map { "frame-\($0)" })
        }
        journal.flush()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5)
        #expect(lines[4] == #"{"epoch":7,"seq":5,"kind":"valid","frame":"frame-4"}"#)
    }

    @Test("a client whose buffer would overflow is disconnected; the others carry on")
    func slowClient() async throws {
        let hub = Self.hub(capacity: 4, journal: nil)
        let aborted = LockedCounter()
        let slow = hub.connect(remoteAddress: "slow", abortConnection: { aborted.increment() })
        let fast = hub.connect(remoteAddress: "fast", abortConnection: {})
        #expect(hub.broadcast(Self.frames(3)))
        // The fast client empties its buffer; the slow one does not.
        guard case .write(let batch) = await fast.nextStep() else { Issue.record("expected frames"); return }
        #expect(Self.payloads(batch) == ["frame-0", "frame-1", "frame-2"])
        #expect(batch.count == 4, "the hello, then the three frames")
        #expect(hub.broadcast(Self.frames(3, from: 3)))
        #expect(aborted.value == 1)
        #expect(hub.activeCount == 1)
        guard case .stop = await slow.nextStep() else { Issue.record("slow client should stop"); return }
        guard case .write(let next) = await fast.nextStep() else { Issue.record("expected frames"); return }
        #expect(Self.payloads(next) == ["frame-3", "frame-4", "frame-5"])
    }

    @Test("draining hands over what is buffered, then asks for the close; the feed pauses")
    func drainAfterBufferedFrames() async throws {
        let hub = Self.hub(capacity: 100, journal: nil)
        let subscriber = hub.connect(remoteAddress: "a", abortConnection: {})
        #expect(hub.broadcast(Self.frames(2)))
        #expect(hub.drainAll(reason: "bye") == 1)
        #expect(hub.activeCount == 0)
        #expect(hub.broadcast(Self.frames(1, from: 2)) == false)  // nobody active: the feed does not advance
        guard case .write(let batch) = await subscriber.nextStep() else { Issue.record("expected frames"); return }
        #expect(Self.payloads(batch) == ["frame-0", "frame-1"])
        guard case .close(let reason) = await subscriber.nextStep() else { Issue.record("expected close"); return }
        #expect(reason == "bye")
        hub.disconnect(subscriber)
        #expect(await hub.waitUntilNoConnections(timeout: .seconds(1)))
    }

    @Test("a waiting writer is woken by new frames and by cancellation")
    func writerWakeUps() async throws {
        let hub = Self.hub(capacity: 100, journal: nil)
        let subscriber = hub.connect(remoteAddress: "a", abortConnection: {})
        // The hello is queued at connect: the writer takes it at once.
        guard case .write(let hello) = await subscriber.nextStep() else { Issue.record("expected the hello"); return }
        #expect(hello.count == 1 && Self.payloads(hello).isEmpty)
        async let step = subscriber.nextStep()
        try await Task.sleep(for: .milliseconds(50))
        hub.broadcast(Self.frames(1))
        guard case .write(let batch) = await step else { Issue.record("expected frames"); return }
        #expect(Self.payloads(batch) == ["frame-0"])

        let waiting = Task { await subscriber.nextStep() }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        guard case .stop = await waiting.value else { Issue.record("cancellation should stop the writer"); return }
    }

    @Test("while the writer waits with nothing queued, frames go straight to the connection; when it cannot take them they queue for the writer, in order")
    func framesWrittenWithoutTheWriter() async throws {
        let connection = DirectConnection()
        let hub = Self.hub(capacity: 100, journal: nil)
        let subscriber = hub.connect(remoteAddress: "a", abortConnection: {}, writeNow: { connection.take($0) })
        // The writer has not asked yet: the frame queues behind the hello.
        hub.broadcast(Self.frames(1))
        guard case .write(let first) = await subscriber.nextStep() else { Issue.record("expected the hello and frame-0"); return }
        #expect(first.count == 2 && Self.payloads(first) == ["frame-0"])
        #expect(connection.written.isEmpty)

        let parked = Task { await subscriber.nextStep() }
        let waiting = try await TestInfrastructure.waitUntil(timeout: .seconds(10), interval: .milliseconds(5)) { subscriber.isWriterWaiting }
        try #require(waiting, "the writer never waited for frames")
        hub.broadcast(Self.frames(2, from: 1))
        hub.broadcast(Self.frames(1, from: 3))
        #expect(connection.written.map(Self.payloads) == [["frame-1", "frame-2"], ["frame-3"]])
        #expect(subscriber.isWriterWaiting && subscriber.bufferedCount == 0)

        // The socket is full: the next frames wake the writer instead.
        connection.accepting = false
        hub.broadcast(Self.frames(1, from: 4))
        guard case .write(let queued) = await parked.value else { Issue.record("expected frame-4 for the writer"); return }
        #expect(Self.payloads(queued) == ["frame-4"])
        #expect(connection.written.count == 2)
    }

    @Test("once closed for shutdown, a client that connects is told to close at once, and the last disconnect wakes the drain")
    func closedHubClosesNewClients() async throws {
        let hub = Self.hub(capacity: 10, journal: nil)
        let early = hub.connect(remoteAddress: "early", abortConnection: {})
        #expect(hub.drainAll(reason: "supplier shutting down", closing: true) == 1)
        let late = hub.connect(remoteAddress: "late", abortConnection: {})
        #expect(hub.activeCount == 0)
        #expect(hub.broadcast(Self.frames(2)) == false, "nobody is active: nothing journaled")
        // The early client first gets what was queued for it (its hello); the late one nothing.
        guard case .write(let hello) = await early.nextStep(), hello.count == 1 else { Issue.record("expected the early client's hello"); return }
        for subscriber in [early, late] {
            guard case .close(let reason) = await subscriber.nextStep() else {
                Issue.record("expected a close step")
                return
            }
            #expect(reason == "supplier shutting down")
        }
        let waiting = Task { await hub.waitUntilNoConnections(timeout: .seconds(60)) }
        hub.disconnect(early)
        hub.disconnect(late)
        #expect(await waiting.value)
        #expect(await hub.waitUntilNoConnections(timeout: .milliseconds(1)))
    }

    @Test("the drain gives up after its timeout; abortAll closes what is left")
    func drainTimeoutThenAbort() async throws {
        let hub = Self.hub(capacity: 10, journal: nil)
        let aborted = LockedCounter()
        _ = hub.connect(remoteAddress: "stuck", abortConnection: { aborted.increment() })
        hub.drainAll(reason: "supplier shutting down", closing: true)
        #expect(await hub.waitUntilNoConnections(timeout: .milliseconds(50)) == false)
        #expect(hub.abortAll() == 1)
        #expect(aborted.value == 1)
        #expect(hub.connectionCount == 0)
    }

    @Test("the feed loop's wait for a client ends when one connects, or when it is cancelled")
    func waitForActiveClient() async throws {
        let hub = Self.hub(capacity: 10, journal: nil)
        let waiting = Task { await hub.waitForActiveClient(); return hub.activeCount }
        try await Task.sleep(for: .milliseconds(20))
        _ = hub.connect(remoteAddress: "a", abortConnection: {})
        #expect(await waiting.value == 1)
        await hub.waitForActiveClient()  // a client is active: returns at once

        let empty = Self.hub(capacity: 10, journal: nil)
        let cancelled = Task { await empty.waitForActiveClient(); return empty.activeCount }
        try await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        #expect(await cancelled.value == 0)
    }
}

final class LockedCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// A connection for `FeedSubscriber.writeNow`: records what it takes, refuses while full.
private final class DirectConnection: Sendable {
    private let state = Mutex<(accepting: Bool, written: [[QueuedFrame]])>((true, []))
    var accepting: Bool {
        get { state.withLock { $0.accepting } }
        set { state.withLock { $0.accepting = newValue } }
    }
    var written: [[QueuedFrame]] { state.withLock { $0.written } }
    func take(_ frames: [QueuedFrame]) -> Bool {
        state.withLock { state in
            guard state.accepting else { return false }
            state.written.append(frames)
            return true
        }
    }
}
