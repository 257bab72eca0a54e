import Contracts
import Foundation
import Kafka
import Logging
import Metrics
import ReadModels
import ServiceLifecycle
import ServiceSupport

/// Watches the feed heartbeats (`odds_feed_status`) and keeps the platform's status overlay of
/// each feed (see `FeedLiveness` for the rule). Every processor instance reads every heartbeat
/// (its own consumer, assigned to all partitions from the newest offset, no group), so each can
/// tell on its own that a feed went quiet; they all write the same overlay.
///
/// Reopening waits until the processor group has committed, on every partition of the odds
/// topic, the offsets Kafka had when the `up` heartbeat arrived: what ingest recovered is then
/// in the read models, so markets reopen with current prices.
final class FeedWatch: Service, Sendable {
    let brokers: String
    let statusTopic: String
    let oddsTopic: String
    let staleAfter: Duration
    /// The processing consumer: its group's committed offsets say what the read models hold.
    let oddsConsumer: KafkaConsumer
    let admin: KafkaAdmin
    let store: FeedStatusStore
    let health: ProcessorHealth
    let logger: Logger

    init(brokers: String, statusTopic: String, oddsTopic: String, staleAfter: Duration, oddsConsumer: KafkaConsumer,
         admin: KafkaAdmin, store: FeedStatusStore, health: ProcessorHealth, logger: Logger) {
        self.brokers = brokers
        self.statusTopic = statusTopic
        self.oddsTopic = oddsTopic
        self.staleAfter = staleAfter
        self.oddsConsumer = oddsConsumer
        self.admin = admin
        self.store = store
        self.health = health
        self.logger = logger
    }

    func run() async throws {
        // Kafka or a store going away must not stop the watch (nor, by ending this service,
        // the processor): start over after a pause, with the overlays as stored.
        var backoff = Backoff(base: .milliseconds(200), cap: .seconds(5))
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await self.watch() }
            } catch is CancellationError {
                break
            } catch {
                logger.error("feed watch failed; starting over", metadata: ["error": "\(error)"])
                let delay = backoff.nextDelay()
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
            }
        }
    }

    private func watch() async throws {
        var feeds = try await loadStored()
        let consumer = try await followHeartbeats()
        defer { Task { try? await consumer.close() } }
        var unsaved: [String: FeedStatus] = [:]
        var reopenMarks: [TopicPartition: Int64]?
        for (_, liveness) in feeds { unsaved[liveness.feed] = liveness.overlay }  // Redis may have lost it

        while !Task.isCancelled {
            let now = ContinuousClock.now
            let nextCheck = feeds.values.map { $0.nextCheck() }.min() ?? now + staleAfter
            var wait = min(max(nextCheck - now, .milliseconds(1)), .milliseconds(500))
            if reopenMarks != nil { wait = min(wait, .milliseconds(100)) }
            let records = try await consumer.poll(maxMessages: 1_000, maxWait: wait)

            for record in records {
                guard let heartbeat = try? ContractCoding.decoder.decode(FeedHeartbeat.self, from: Data(record.value)) else {
                    FeedMetrics.invalidHeartbeats.increment()
                    logger.warning("unreadable feed heartbeat ignored", metadata: [
                        "partition": "\(record.partition)", "offset": "\(record.offset)",
                        "value": "\(String(decoding: record.value.prefix(200), as: UTF8.self))",
                    ])
                    continue
                }
                var liveness = feeds[heartbeat.feed] ?? FeedLiveness(
                    feed: heartbeat.feed, staleAfter: staleAfter, stored: nil, now: .now, wallNow: .now())
                if feeds[heartbeat.feed] == nil {
                    unsaved[heartbeat.feed] = liveness.overlay
                    logger.notice("new feed", metadata: ["feed": "\(heartbeat.feed)"])
                }
                apply(liveness.observe(heartbeat, at: .now, wallNow: .now()), liveness: liveness, unsaved: &unsaved)
                feeds[heartbeat.feed] = liveness
            }
            for feed in Array(feeds.keys) {
                apply(feeds[feed]!.check(at: .now), liveness: feeds[feed]!, unsaved: &unsaved)
                FeedMetrics.heartbeatAge(feed).record(Double((feeds[feed]!.heartbeatAge(at: .now)) / .milliseconds(1)) / 1000)
            }

            // Reopening: wait for the read models to hold what Kafka had at the `up` heartbeat.
            if feeds.values.contains(where: \.reopenPending) {
                if reopenMarks == nil { reopenMarks = try? await oddsHighWatermarks() }
                if let marks = reopenMarks, await caughtUp(with: marks) {
                    for feed in Array(feeds.keys) {
                        var liveness = feeds[feed]!
                        apply(liveness.caughtUp(wallNow: .now()), liveness: liveness, unsaved: &unsaved)
                        feeds[feed] = liveness
                    }
                    reopenMarks = nil
                }
            } else {
                reopenMarks = nil
            }

            // Store what changed; what fails is retried on the next round (the stores' readiness
            // is the processing loop's business).
            for (feed, status) in unsaved {
                do {
                    try await store.store(status)
                    unsaved[feed] = nil
                } catch {
                    logger.error("cannot store the feed status; will retry", metadata: ["feed": "\(feed)", "error": "\(error)"])
                    break
                }
            }
        }
    }

    private func apply(_ decision: FeedLiveness.Decision, liveness: FeedLiveness, unsaved: inout [String: FeedStatus]) {
        switch decision {
        case .none:
            return
        case .reopenWhenCaughtUp:
            logger.notice("feed is up again; reopening its markets once the read models caught up", metadata: ["feed": "\(liveness.feed)"])
        case .store(let status):
            unsaved[status.feed] = status
            FeedMetrics.suspended(status.feed).record(status.isSuspended ? 1 : 0)
            if status.isSuspended {
                FeedMetrics.suspensions(status.feed, detail: status.detail ?? "").increment()
                logger.error("feed down: suspending its markets", metadata: [
                    "feed": "\(status.feed)", "detail": "\(status.detail ?? "")", "since": "\(status.since.rfc3339)",
                ])
            } else {
                FeedMetrics.reopenings(status.feed).increment()
                logger.notice("feed recovered: its markets reopen", metadata: ["feed": "\(status.feed)"])
            }
        }
    }

    /// The stored overlays, once the schema is there (the processing loop applies migrations).
    private func loadStored() async throws -> [String: FeedLiveness] {
        var backoff = Backoff(base: .milliseconds(100), cap: .seconds(5))
        while true {
            if health.isSchemaReady, let stored = try? await store.load() {
                var feeds: [String: FeedLiveness] = [:]
                for (feed, status) in stored {
                    feeds[feed] = FeedLiveness(feed: feed, staleAfter: staleAfter, stored: status, now: .now, wallNow: .now())
                    FeedMetrics.suspended(feed).record(status.isSuspended ? 1 : 0)
                }
                logger.info("feed status overlays loaded", metadata: [
                    "feeds": "\(stored.values.map { "\($0.feed)=\($0.state.rawValue)" }.sorted().joined(separator: ","))",
                ])
                return feeds
            }
            try await Task.sleep(for: backoff.nextDelay())
        }
    }

    /// A consumer of every partition of the heartbeat topic, from its newest offset.
    private func followHeartbeats() async throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: "odds-processor-feed-watch")
        configuration.clientID = "odds-processor-feed-watch"
        configuration.fetchMaxWait = .milliseconds(500)  // answered as soon as a heartbeat arrives
        configuration.autoOffsetReset = .latest
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        var backoff = Backoff(base: .milliseconds(200), cap: .seconds(2))
        while true {
            // The topic exists once an ingest wrote to it (the dev broker creates topics on use).
            if let partitions = try? await admin.partitionCount(of: statusTopic, timeout: .seconds(2)), partitions > 0 {
                var positions: [TopicPartitionOffset] = []
                for partition in 0..<Int32(partitions) {
                    let key = TopicPartition(topic: statusTopic, partition: partition)
                    let marks = try await consumer.watermarks(of: key)
                    positions.append(TopicPartitionOffset(key, offset: marks.high))
                }
                try consumer.assign(positions)
                logger.info("following feed heartbeats", metadata: ["topic": "\(statusTopic)", "partitions": "\(partitions)"])
                return consumer
            }
            try await Task.sleep(for: backoff.nextDelay())
        }
    }

    private func oddsHighWatermarks() async throws -> [TopicPartition: Int64] {
        guard let partitions = try await admin.partitionCount(of: oddsTopic) else { return [:] }
        var marks: [TopicPartition: Int64] = [:]
        for partition in 0..<Int32(partitions) {
            let key = TopicPartition(topic: oddsTopic, partition: partition)
            marks[key] = try await oddsConsumer.watermarks(of: key).high
        }
        return marks
    }

    private func caughtUp(with marks: [TopicPartition: Int64]) async -> Bool {
        let needed = marks.filter { $0.value > 0 }
        guard !needed.isEmpty else { return true }
        guard let committed = try? await oddsConsumer.committedOffsets(for: Array(needed.keys)) else { return false }
        let reached = Dictionary(committed.map { ($0.topicPartition, $0.offset) }, uniquingKeysWith: max)
        return needed.allSatisfy { (reached[$0.key] ?? -1) >= $0.value }
    }
}

/// The processor's feed metrics, labelled by feed.
enum FeedMetrics {
    static let invalidHeartbeats = Counter(label: "odds_processor_feed_heartbeats_invalid_total")
    static func suspended(_ feed: String) -> Gauge { Gauge(label: "odds_processor_feed_suspended", dimensions: [("feed", feed)]) }
    static func heartbeatAge(_ feed: String) -> Gauge { Gauge(label: "odds_processor_feed_heartbeat_age_seconds", dimensions: [("feed", feed)]) }
    static func suspensions(_ feed: String, detail: String) -> Counter {
        Counter(label: "odds_processor_feed_suspensions_total", dimensions: [("feed", feed), ("detail", detail)])
    }
    static func reopenings(_ feed: String) -> Counter { Counter(label: "odds_processor_feed_reopenings_total", dimensions: [("feed", feed)]) }
}
