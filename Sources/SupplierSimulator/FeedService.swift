import Contracts
import Foundation
import Logging
import ServiceLifecycle

/// The feed loop: every tick it emits the frames that came due at the configured rate, with the
/// configured faults, to every connected client.
///
/// The feed advances only while at least one client is connected: a feed with nobody
/// listening does not move (no versions are used up, nothing is journaled), so every journaled
/// frame was handed to at least one client's buffer.
///
/// On graceful shutdown it stops emitting, lets every client receive what is already buffered
/// for it, closes the connections and flushes the journal.
struct FeedService: Service {
    let hub: FeedHub
    let rate: Int
    /// The feed's markets and fault decisions; its `book` is the hub's starting snapshot.
    let generator: FeedGenerator
    let faults: FaultRates
    let seed: UInt64
    let disconnectEvery: Duration?
    /// Stop emitting after this many stream frames (connections stay open); nil = never.
    var maxFrames: UInt64?
    let logger: Logger
    /// The shortest time between two wake-ups. The loop sleeps until the next frame is due (so
    /// 100 updates/s wake it 100 times a second, not 1,000), but never less than this: at high
    /// rates each wake-up sends the frames due since the last one in one write. 1 ms: a real feed
    /// sends changes as they happen, not in bursts; with 5 ms every frame of a burst queued
    /// behind the others at each stage downstream.
    var tick: Duration = .milliseconds(1)
    var shutdownDrainTimeout: Duration = .seconds(10)
    /// An `alive` frame goes out when nothing else was sent for this long.
    var aliveInterval: Duration = .seconds(1)

    func run() async throws {
        var generator = self.generator
        var pacer = RatePacer(rate: Double(rate))
        var disconnects = DisconnectSchedule(period: disconnectEvery)
        let clock = ContinuousClock()
        let origin = clock.now
        var nextTick = origin
        var reachedMaximum = false
        logger.info("feed started", metadata: [
            "rate": "\(rate)", "epoch": "\(hub.epoch)", "markets": "\(generator.markets.count)", "seed": "\(seed)",
            "faults": "malformed=\(faults.malformed) invalid=\(faults.invalid) duplicate=\(faults.duplicate) out_of_order=\(faults.outOfOrder)",
            "disconnect_every": "\(disconnectEvery.map { "\($0)" } ?? "off")", "alive_interval": "\(aliveInterval)",
        ])

        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            nextTick += tick
            if let due = pacer.nextDue { nextTick = max(nextTick, origin + due) }
            nextTick = min(nextTick, hub.lastSent + aliveInterval)
            let now = clock.now
            if nextTick < now - .milliseconds(100) { nextTick = now }  // fell behind: do not spin
            try? await Task.sleep(until: nextTick, clock: clock)

            guard hub.activeCount > 0 else {
                // Nobody listens: sleep until a client connects (or shutdown), no ticking.
                pacer.reset()
                await cancelWhenGracefulShutdown { await hub.waitForActiveClient() }
                nextTick = clock.now
                continue
            }
            let elapsed = clock.now - origin
            if disconnects.isDue(now: elapsed) {
                let dropped = hub.drainAll(reason: "scheduled disconnect (fault injection)")
                hub.metrics.forcedDisconnects.increment(by: Int64(dropped))
                logger.notice("fault injection: closing every connection after its buffered frames", metadata: ["connections": "\(dropped)"])
                pacer.reset()
                continue
            }
            if clock.now - hub.lastSent >= aliveInterval { hub.broadcastAlive() }
            var due = pacer.framesDue(now: elapsed)
            if let maxFrames {
                let left = maxFrames > hub.emittedCount ? Int(min(maxFrames - hub.emittedCount, UInt64(Int.max))) : 0
                if left == 0 {
                    if !reachedMaximum {
                        reachedMaximum = true
                        logger.notice("emitted the configured maximum of frames; the feed stays connected, sending alive frames only",
                                      metadata: ["max_frames": "\(maxFrames)"])
                    }
                    // Quiet: wake for the next alive frame only, not every tick.
                    let wake = hub.lastSent + aliveInterval
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(until: wake, clock: clock) }
                    nextTick = clock.now
                    continue
                }
                due = min(due, left)
            }
            guard due > 0 else { continue }
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

        // Clients that (re)connect from now on are closed at once: a reconnecting client must
        // not keep the supplier from stopping.
        let draining = hub.drainAll(reason: "supplier shutting down", closing: true)
        if draining > 0 || hub.connectionCount > 0 {
            logger.info("writing buffered frames before closing", metadata: ["connections": "\(hub.connectionCount)"])
        }
        if !(await hub.waitUntilNoConnections(timeout: shutdownDrainTimeout)) {
            let aborted = hub.abortAll()
            logger.warning("connections still open after the drain timeout; closed them", metadata: ["connections": "\(aborted)"])
        }
        hub.journal?.flush()
        logger.info("feed stopped", metadata: ["frames_emitted": "\(hub.emittedCount)"])
    }
}
