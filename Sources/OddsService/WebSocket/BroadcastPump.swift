import Contracts
import Foundation
import Logging
import ReadModels
import Redis
import ServiceLifecycle
import Synchronization

/// The one Redis pub/sub subscriber of the process, on two channels: applied odds
/// (`BroadcastMessage`, handed to the hub) and feed status changes (`FeedStatus`, stored in the
/// board and pushed to subscribers as `status` frames). After the subscription reconnects
/// (Redis restart: messages published meanwhile are lost) it re-reads the feed status hash and
/// the current odds of every subscribed event and offers them; each connection's version
/// guard lets through only what that client is missing, and its status memory only changes.
final class BroadcastPump: Service, Sendable {
    let subscriber: RedisSubscriber
    let hub: FanOutHub
    let query: OddsQueryService
    let feedStatuses: any FeedStatusSource
    let metrics: ServiceMetrics
    let logger: Logger
    /// The channel of applied odds (REDIS_PUBSUB_CHANNEL) and of feed status changes.
    let oddsChannel: String
    let feedStatusChannel: String
    /// True once the subscription is live and the feed status overlay was read (readiness).
    let subscribed = Atomic<Bool>(false)

    init(subscriber: RedisSubscriber, hub: FanOutHub, query: OddsQueryService, feedStatuses: any FeedStatusSource,
         oddsChannel: String, feedStatusChannel: String = RedisKeys.feedStatusChannel,
         metrics: ServiceMetrics, logger: Logger) {
        self.subscriber = subscriber
        self.hub = hub
        self.query = query
        self.feedStatuses = feedStatuses
        self.oddsChannel = oddsChannel
        self.feedStatusChannel = feedStatusChannel
        self.metrics = metrics
        self.logger = logger
    }

    var board: FeedStatusBoard { hub.board }

    func run() async throws {
        // Messages are handled on the subscriber's reader thread: a hop to this task per
        // message was one more thread wake-up per update (the hub only queues and schedules).
        subscriber.start { [self] channel, payload in dispatch(channel: channel, payload) }
        await withGracefulShutdownHandler {
            for await event in self.subscriber {
                switch event {
                case .subscribed:
                    // Subscribed first, then read: a change written after the read is published
                    // after it, so it arrives here; an older one is ignored by the board.
                    await reloadFeedStatuses(reason: "start")
                    subscribed.store(true, ordering: .relaxed)
                    logger.info("subscribed to the odds and feed status channels", metadata: ["channels": "\(subscriber.channels)"])
                case .message(let channel, let payload):
                    dispatch(channel: channel, payload)
                case .patternMessage(_, let channel, let payload):
                    dispatch(channel: channel, payload)
                case .reconnected(let downtime):
                    subscribed.store(true, ordering: .relaxed)
                    await reloadFeedStatuses(reason: "reconnect")
                    await resync(downtime: downtime)
                }
            }
        } onGracefulShutdown: {
            Task { await self.subscriber.shutdown() }
        }
        await subscriber.shutdown()
    }

    func dispatch(channel: String, _ payload: [UInt8]) {
        if channel == feedStatusChannel {
            deliverFeedStatus(payload)
        } else if channel == oddsChannel {
            deliver(payload)
        } else {
            metrics.broadcastInvalid()
            logger.warning("message on an unexpected channel", metadata: ["channel": "\(channel)", "bytes": "\(payload.count)"])
        }
    }

    func deliver(_ payload: [UInt8]) {
        metrics.broadcastReceived()
        do {
            let message = try BroadcastMessage.parse(payload)
            query.mirror?.apply(message.payload)
            // The payload goes out as it came (decoded above, so it is a valid OddsUpdate).
            let payloadJSON = JSONSpan.valueRange(ofTopLevelKey: "payload", in: payload).map { payload[$0] }
            hub.deliver(message.payload, payloadJSON: payloadJSON)
        } catch {
            metrics.broadcastInvalid()
            logger.warning("undecodable broadcast message", metadata: ["error": "\(error)", "bytes": "\(payload.count)"])
        }
    }

    /// One message of the feed status channel: counted and logged when it is not a FeedStatus.
    func deliverFeedStatus(_ payload: [UInt8]) {
        do {
            apply(try ContractCoding.decoder.decode(FeedStatus.self, from: Data(payload)), origin: "channel")
        } catch {
            metrics.feedStatusInvalid()
            logger.warning("undecodable feed status message", metadata: [
                "error": "\(error)", "bytes": "\(payload.count)", "text": "\(String(decoding: payload.prefix(200), as: UTF8.self))",
            ])
        }
    }

    /// Stores a feed status and, when the state changed, pushes it to the subscribers of the
    /// feed's events at once.
    func apply(_ status: FeedStatus, origin: String) {
        let previous = board.status(of: status.feed)
        switch board.apply(status) {
        case .updated(let pushNeeded):
            if previous?.state != status.state {
                let level: Logger.Level = status.isSuspended ? .warning : .info
                logger.log(level: level, status.isSuspended ? "feed down: its markets are suspended" : "feed open again", metadata: [
                    "feed": "\(status.feed)", "state": "\(status.state.rawValue)", "detail": "\(status.detail ?? "-")",
                    "since": "\(status.since)", "origin": "\(origin)",
                ])
            }
            if pushNeeded { hub.pushStatus(feed: status.feed) }
        case .unchanged:
            break
        case .stale:
            logger.debug("older feed status ignored", metadata: [
                "feed": "\(status.feed)", "since": "\(status.since)", "held": "\(previous?.since.description ?? "-")",
            ])
        }
    }

    /// Reads the whole overlay (hash `odds:feed_status`) and applies it. A failed read leaves the
    /// overlay as it is (the periodic reload tries again).
    func reloadFeedStatuses(reason: String) async {
        do {
            let read = try await feedStatuses.feedStatuses()
            for field in read.invalidFields {
                metrics.feedStatusInvalid()
                logger.warning("undecodable feed status in redis", metadata: ["key": "\(RedisKeys.feedStatus)", "field": "\(field)"])
            }
            for status in read.statuses { apply(status, origin: "hash") }
        } catch {
            logger.error("feed status overlay read failed; keeping what is known", metadata: [
                "reason": "\(reason)", "error": "\(error)",
            ])
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

/// Where the pump reads the whole feed status overlay (Redis in production, fakes in tests).
protocol FeedStatusSource: Sendable {
    func feedStatuses() async throws -> FeedStatusRead
}

extension RedisOddsReader: FeedStatusSource {}

/// Re-reads the feed status overlay every `interval`: pub/sub is fire-and-forget, so a change
/// whose message was lost (without a reconnect to notice) is still picked up.
struct FeedStatusReloader: Service {
    let pump: BroadcastPump
    let interval: Duration

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                await pump.reloadFeedStatuses(reason: "periodic")
            }
        }
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
