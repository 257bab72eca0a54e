import Contracts
import Foundation
import Migrations
import Redis
import ServiceSupport

/// Everything odds-processor needs, read from the environment (flags override) and validated.
struct ProcessorConfiguration: Sendable {
    var kafkaBrokers: String
    var topic: String
    var deadLetterTopic: String
    var groupID: String
    var batchSize: Int
    var batchMaxWait: Duration
    /// How often the offsets of processed batches are committed (0: after every batch).
    var commitInterval: Duration
    var sessionTimeout: Duration
    var redis: RedisConfiguration
    var channel: String
    var postgres: PostgresDSN
    var applyMigrations: Bool
    var migrationsDirectory: URL
    var metricsPort: Int
    /// Feed heartbeats (from odds-ingest) and how long without one before a feed is down.
    var feedStatusTopic: String
    var feedStaleAfter: Duration
    var logging: LoggingConfiguration
    /// librdkafka properties passed through as they are (`KAFKA_CONSUMER_PROPERTIES=a=b,c=d`).
    var extraConsumerProperties: [String: String]

    init(reader: ConfigurationReader) throws {
        kafkaBrokers = try reader.hostAndPortList("KAFKA_BROKERS", default: "127.0.0.1:9092")
            .map(\.description).joined(separator: ",")
        topic = reader.string("KAFKA_TOPIC_ODDS", default: Topics.oddsUpdates)
        deadLetterTopic = reader.string("KAFKA_TOPIC_DLQ", default: Topics.oddsUpdatesDeadLetter)
        groupID = reader.string("KAFKA_GROUP_ID", default: ConsumerGroups.processor)
        batchSize = try reader.integer("PROCESSOR_BATCH_SIZE", default: 2_000, range: 1...100_000)
        // A poll returns as soon as the first message arrives; the wait only bounds how often an idle
        // processor wakes up and how soon it notices a stop.
        batchMaxWait = try reader.milliseconds("PROCESSOR_BATCH_WAIT_MS", default: 250, range: 1...60_000)
        // Processed offsets are stored after every batch and committed at most this often while
        // batches come, once when the input pauses, and before partitions move or the processor
        // stops: a crash replays at most about this much (the version guards make the replay
        // harmless). A commit per batch cost a request and two thread wake-ups per batch, at
        // 1,000 updates/s one per update.
        commitInterval = try reader.milliseconds("PROCESSOR_COMMIT_INTERVAL_MS", default: 100, range: 0...60_000)
        sessionTimeout = try reader.milliseconds("KAFKA_SESSION_TIMEOUT_MS", default: 6_000, range: 1_000...300_000)
        let redisAddress = reader.string("REDIS_ADDR", default: "127.0.0.1:6380")
        do {
            redis = try RedisConfiguration(address: redisAddress)
        } catch {
            throw ConfigurationError(key: "REDIS_ADDR", reason: "\(error)")
        }
        channel = reader.string("REDIS_PUBSUB_CHANNEL", default: RedisKeys.broadcastChannel)
        do {
            postgres = try PostgresDSN(reader.string("POSTGRES_DSN", default: "postgres://odds:odds@127.0.0.1:5433/odds"))
        } catch {
            throw ConfigurationError(key: "POSTGRES_DSN", reason: "\(error)")
        }
        applyMigrations = try reader.boolean("PROCESSOR_APPLY_MIGRATIONS", default: true)
        migrationsDirectory = URL(fileURLWithPath: reader.string("MIGRATIONS_DIR", default: "migrations"), isDirectory: true)
        metricsPort = try reader.port("METRICS_PORT", default: 9097)
        feedStatusTopic = reader.string("KAFKA_TOPIC_FEED_STATUS", default: Topics.feedStatus)
        feedStaleAfter = try reader.milliseconds("FEED_STALE_AFTER_MS", default: 3_000, range: 100...600_000)
        logging = try LoggingConfiguration(reader: reader)
        extraConsumerProperties = [:]
        if let text = reader.raw("KAFKA_CONSUMER_PROPERTIES") {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw ConfigurationError(key: "KAFKA_CONSUMER_PROPERTIES", reason: "must be name=value pairs separated by commas")
                }
                extraConsumerProperties[parts[0]] = parts[1]
            }
        }
    }
}
