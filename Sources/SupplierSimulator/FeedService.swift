import Contracts
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// The feed loop: every tick it emits the frames that came due at the configured rate, with the
/// configured faults, to every connected client. The ticks run on an event loop (`FeedTicker`);
/// this service waits for clients and stops the feed.
///
/// The feed advances only while at least one client is connected: a feed with nobody
/// listening does not move (no versions are used up, nothing is journaled), so every journaled
/// frame was handed to at least one client's buffer.
///
/// On graceful shutdown it stops emitting, lets every client receive what is already buffered
/// for it, closes the connections and flushes the journal.
struct FeedService: Service {
    let hub: FeedHub
    /// Where the ticks run (`FeedTicker`): the loop of the feed server's connections.
    let eventLoop: any EventLoop
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
        logger.info("feed started", metadata: [
            "rate": "\(rate)", "epoch": "\(hub.epoch)", "markets": "\(generator.markets.count)", "seed": "\(seed)",
            "faults": "malformed=\(faults.malformed) invalid=\(faults.invalid) duplicate=\(faults.duplicate) out_of_order=\(faults.outOfOrder)",
            "disconnect_every": "\(disconnectEvery.map { "\($0)" } ?? "off")", "alive_interval": "\(aliveInterval)",
        ])
        let ticker = FeedTicker(feed: self)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Nobody listens: sleep until a client connects (or shutdown), no ticking.
            await cancelWhenGracefulShutdown { await hub.waitForActiveClient() }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { break }
            // Ticks on the event loop until the last client leaves or the service stops.
            await ticker.runUntilIdle()
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
