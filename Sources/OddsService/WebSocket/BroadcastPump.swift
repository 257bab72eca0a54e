import Contracts
import Foundation
import Logging
import Redis
import ServiceLifecycle
import Synchronization

/// The one Redis pub/sub subscriber of the process: decodes each BroadcastMessage and hands it
/// to the hub. After the subscription reconnects (Redis restart: messages published meanwhile
/// are lost) it re-reads the current odds of every subscribed event and offers them as deltas;
/// each connection's version guard lets through only what that client is missing.
final class BroadcastPump: Service, Sendable {
    let subscriber: RedisSubscriber
    let hub: FanOutHub
    let query: OddsQueryService
    let metrics: ServiceMetrics
    let logger: Logger
    /// True once the subscription is live (readiness).
    let subscribed = Atomic<Bool>(false)

    init(subscriber: RedisSubscriber, hub: FanOutHub, query: OddsQueryService, metrics: ServiceMetrics, logger: Logger) {
        self.subscriber = subscriber
        self.hub = hub
        self.query = query
        self.metrics = metrics
        self.logger = logger
    }

    func run() async throws {
        subscriber.start()
        await withGracefulShutdownHandler {
            for await event in self.subscriber {
                switch event {
                case .subscribed:
                    subscribed.store(true, ordering: .relaxed)
                    logger.info("subscribed to the odds broadcast channel", metadata: ["channel": "\(subscriber.channels)"])
                case .message(_, let payload):
                    deliver(payload)
                case .patternMessage(_, _, let payload):
                    deliver(payload)
                case .reconnected(let downtime):
                    subscribed.store(true, ordering: .relaxed)
                    await resync(downtime: downtime)
                }
            }
        } onGracefulShutdown: {
            Task { await self.subscriber.shutdown() }
        }
        await subscriber.shutdown()
    }

    func deliver(_ payload: [UInt8]) {
        metrics.broadcastReceived()
        do {
            let message = try ContractCoding.decoder.decode(BroadcastMessage.self, from: Data(payload))
            hub.deliver(message.payload)
        } catch {
            metrics.broadcastInvalid()
            logger.warning("undecodable broadcast message", metadata: ["error": "\(error)", "bytes": "\(payload.count)"])
        }
    }

    /// Offers the current read model of every subscribed event to its subscribers.
    func resync(downtime: Duration) async {
        metrics.resync()
        let eventIds = hub.subscribedEventIds()
        logger.info("redis subscription reconnected; re-syncing subscribers", metadata: [
            "events": "\(eventIds.count)", "downtime": "\(downtime)",
        ])
        var offered = 0
        var start = 0
        while start < eventIds.count {
            let chunk = Array(eventIds[start..<min(start + 200, eventIds.count)])
            start += chunk.count
            do {
                let current = try await query.currentOdds(eventIds: chunk)
                for eventId in chunk {
                    for update in current[eventId] ?? [] {
                        hub.deliver(update)
                        offered += 1
                    }
                }
            } catch {
                logger.error("re-sync read failed; subscribers of these events may miss updates until the next one",
                             metadata: ["events": "\(chunk.count)", "error": "\(error)"])
            }
        }
        logger.info("re-sync done", metadata: ["updatesOffered": "\(offered)"])
    }
}

/// Every `interval`: a heartbeat frame to idle connections, and a slow-consumer close for
/// connections whose writer has been blocked longer than the send timeout.
struct ConnectionSweeper: Service {
    let hub: FanOutHub
    let heartbeat: Duration
    let sendTimeout: Duration
    let pingInterval: Duration

    var interval: Duration {
        max(.milliseconds(10), min(.seconds(1), heartbeat / 4, sendTimeout / 4, pingInterval / 4))
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                let now = ContinuousClock.now
                for connection in hub.allConnections() {
                    connection.sweep(now: now, heartbeat: heartbeat, sendTimeout: sendTimeout, pingInterval: pingInterval)
                }
            }
        }
    }
}
