import Contracts
import Foundation
import NIOCore
import ServiceLifecycle

/// The feed loop's ticks, run by an event loop's timer instead of `Task.sleep`.
///
/// A sleeping task is woken through three threads (the timer's, a handler thread, a thread of
/// Swift's pool) before its frames hop to the event loop that writes them: at 1,000 frames/s that
/// was about seven context switches per frame. Here a tick is the event loop's own timer, and the
/// frames it emits are written by the same thread when the clients' channels live on that loop
/// (the supplier's feed server has one loop, see `SupplierApplication`): one wake-up per tick.
///
/// Every property is touched only on `eventLoop`.
final class FeedTicker: @unchecked Sendable {
    private let feed: FeedService
    private let eventLoop: any EventLoop
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var generator: FeedGenerator
    private var pacer: RatePacer
    private var disconnects: DisconnectSchedule
    private var nextTick: ContinuousClock.Instant
    private var reachedMaximum = false
    private var scheduled: Scheduled<Void>?
    /// Completed when a run ends (nobody listens, or the ticker was stopped).
    private var runEnded: EventLoopPromise<Void>?
    private var stopped = false

    init(feed: FeedService) {
        self.feed = feed
        eventLoop = feed.eventLoop
        generator = feed.generator
        pacer = RatePacer(rate: Double(feed.rate))
        disconnects = DisconnectSchedule(period: feed.disconnectEvery)
        origin = clock.now
        nextTick = origin
    }

    /// Ticks until no client is active, or until graceful shutdown or cancellation (after which
    /// the ticker stays stopped).
    func runUntilIdle() async {
        let ended = eventLoop.makePromise(of: Void.self)
        eventLoop.execute { self.start(ended) }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await ended.futureResult.get()
            } onCancel: {
                self.eventLoop.execute { self.stop() }
            }
        } onGracefulShutdown: {
            self.eventLoop.execute { self.stop() }
        }
    }

    private func start(_ ended: EventLoopPromise<Void>) {
        guard !stopped else {
            ended.succeed()
            return
        }
        runEnded = ended
        nextTick = clock.now
        scheduleNext()
    }

    private func stop() {
        stopped = true
        scheduled?.cancel()
        scheduled = nil
        endRun()
    }

    private func endRun() {
        runEnded?.succeed()
        runEnded = nil
    }

    private func tick() {
        scheduled = nil
        guard !stopped else { return }
        let hub = feed.hub
        guard hub.activeCount > 0 else {
            // The feed restarts from a fresh origin when a client comes back.
            pacer.reset()
            endRun()
            return
        }
        let elapsed = clock.now - origin
        if disconnects.isDue(now: elapsed) {
            let dropped = hub.drainAll(reason: "scheduled disconnect (fault injection)")
            hub.metrics.forcedDisconnects.increment(by: Int64(dropped))
            feed.logger.notice("fault injection: closing every connection after its buffered frames", metadata: ["connections": "\(dropped)"])
            pacer.reset()
            scheduleNext()
            return
        }
        if clock.now - hub.lastSent >= feed.aliveInterval { hub.broadcastAlive() }
        var due = pacer.framesDue(now: elapsed)
        if let maxFrames = feed.maxFrames {
            let left = maxFrames > hub.emittedCount ? Int(min(maxFrames - hub.emittedCount, UInt64(Int.max))) : 0
            if left == 0 {
                if !reachedMaximum {
                    reachedMaximum = true
                    feed.logger.notice("emitted the configured maximum of frames; the feed stays connected, sending alive frames only",
                                       metadata: ["max_frames": "\(maxFrames)"])
                }
                // Quiet: wake for the next alive frame only, not every tick.
                schedule(at: hub.lastSent + feed.aliveInterval)
                return
            }
            due = min(due, left)
        }
        if due > 0 {
            // Frames nobody received (the last client left meanwhile) are taken back: the markets
            // must not move on, or a later duplicate or out-of-order fault would re-send a
            // version that was never sent nor journaled.
            generator.markUndoPoint()
            let frames = generator.nextFrames(count: due, at: Timestamp.now())
            if hub.broadcast(frames) {
                pacer.record(emitted: due)
            } else {
                generator.undo()
                pacer.reset()
            }
        }
        scheduleNext()
    }

    /// The next tick: when the next frame is due, at least `tick` after this one, and no later
    /// than the next alive frame.
    private func scheduleNext() {
        nextTick += feed.tick
        if let due = pacer.nextDue { nextTick = max(nextTick, origin + due) }
        nextTick = min(nextTick, feed.hub.lastSent + feed.aliveInterval)
        if nextTick < clock.now - .milliseconds(100) { nextTick = clock.now }  // fell behind: do not spin
        schedule(at: nextTick)
    }

    private func schedule(at instant: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (instant - clock.now).components
        let nanoseconds = max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        scheduled = eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { self.tick() }
    }
}
