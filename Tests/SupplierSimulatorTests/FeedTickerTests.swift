import Contracts
import Foundation
import IntegrationSupport
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import SupplierSimulator

/// The feed's ticks on an event loop, driven by the loop's real timer (no sockets).
@Suite("Supplier feed ticks on an event loop: frames in order, maximum, alive frames, stopping")
struct FeedTickerTests {
    static let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func generator() -> FeedGenerator {
        FeedGenerator(events: Catalogue.events(generatedCount: 2), faults: FaultRates(), seed: 9, firstVersion: 1_000)
    }

    static func feed(hub: FeedHub, rate: Int, maxFrames: UInt64? = nil, aliveInterval: Duration = .seconds(1)) -> FeedService {
        var feed = FeedService(hub: hub, eventLoop: loops.next(), rate: rate, generator: generator(), faults: FaultRates(),
                               seed: 9, disconnectEvery: nil, maxFrames: maxFrames, logger: Logger(label: "test"))
        feed.aliveInterval = aliveInterval
        return feed
    }

    /// A hub whose book is the generator's markets, as the supplier builds it.
    static func hub() -> FeedHub {
        FeedHub(epoch: 3, book: generator().book(at: Timestamp.now()), replayLog: ReplayLog(capacity: 1_000, maxAge: .seconds(600)),
                clientBufferCapacity: 10_000, journal: nil, metrics: SupplierMetrics(), logger: Logger(label: "test"))
    }

    /// Collects every frame the subscriber's writer is given, as parsed feed frames.
    final class Received: Sendable {
        private let frames = Mutex<[FeedFrame]>([])
        var all: [FeedFrame] { frames.withLock { $0 } }

        func write(_ batch: [QueuedFrame]) {
            let parsed = batch.compactMap { try? FeedFrame.parse(Array($0.text.utf8)) }
            frames.withLock { $0.append(contentsOf: parsed) }
        }

        var streamSeqs: [UInt64] {
            all.compactMap { frame in
                if case .odds(let position, _) = frame { return position.seq }
                return nil
            }
        }

        var aliveCount: Int {
            all.count(where: { if case .alive = $0 { return true } else { return false } })
        }
    }

    /// The writer task a connection would run: takes every batch until the subscriber stops.
    static func writer(for subscriber: FeedSubscriber, into received: Received) -> Task<Void, Never> {
        Task {
            while case .write(let batch) = await subscriber.nextStep() { received.write(batch) }
        }
    }

    @Test("ticks emit the stream in order up to the maximum, then alive frames only; the run ends when the last client leaves")
    func maximumThenAliveThenIdle() async throws {
        let hub = Self.hub()
        let feed = Self.feed(hub: hub, rate: 2_000, maxFrames: 40, aliveInterval: .milliseconds(30))
        let subscriber = hub.connect(remoteAddress: "test", start: .live, abortConnection: {})
        let received = Received()
        let writer = Self.writer(for: subscriber, into: received)
        let ticker = FeedTicker(feed: feed)
        let run = Task { await ticker.runUntilIdle() }

        let sawAlive = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) {
            received.streamSeqs.count == 40 && received.aliveCount >= 2
        }
        #expect(sawAlive, "waited 10 s for 40 stream frames and then two alive frames; got \(received.streamSeqs.count) and \(received.aliveCount)")
        #expect(received.streamSeqs == Array(1...40), "one frame per position, in order, never past the maximum")
        #expect(hub.emittedCount == 40)

        hub.disconnect(subscriber)
        try await TestInfrastructure.value(of: run, "the ticks to stop after the last client left", timeout: .seconds(10))
        try await TestInfrastructure.value(of: writer, "the writer to stop", timeout: .seconds(10))
    }

    @Test("graceful shutdown or cancellation stops the ticks for good")
    func cancellationStops() async throws {
        let hub = Self.hub()
        let feed = Self.feed(hub: hub, rate: 1_000)
        let subscriber = hub.connect(remoteAddress: "test", start: .live, abortConnection: {})
        let received = Received()
        let writer = Self.writer(for: subscriber, into: received)
        let ticker = FeedTicker(feed: feed)
        let run = Task { await ticker.runUntilIdle() }

        let moving = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) { hub.emittedCount >= 10 }
        #expect(moving, "waited 10 s for the feed to emit 10 frames")
        run.cancel()
        try await TestInfrastructure.value(of: run, "the ticks to stop after cancellation", timeout: .seconds(10))
        let stoppedAt = hub.emittedCount
        // A client is still connected: only a stopped ticker keeps the count from moving.
        try await Task.sleep(for: .milliseconds(100))
        #expect(hub.emittedCount == stoppedAt, "no frame after the stop")
        // A later run of a stopped ticker returns at once.
        try await TestInfrastructure.value(of: Task { await ticker.runUntilIdle() }, "a stopped ticker's run to return", timeout: .seconds(10))
        #expect(hub.emittedCount == stoppedAt)
        #expect(received.streamSeqs == Array(1...UInt64(received.streamSeqs.count)), "in order, no gap")

        hub.disconnect(subscriber)
        try await TestInfrastructure.value(of: writer, "the writer to stop", timeout: .seconds(10))
    }
}
