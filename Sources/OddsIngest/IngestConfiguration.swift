import Contracts
import Foundation
import ServiceSupport

/// Every ingest setting, read from flags, then environment variables, then defaults.
struct IngestConfiguration: Sendable, Equatable {
    var host = "0.0.0.0"
    var metricsPort = 9096
    var supplierURL = "ws://127.0.0.1:8081/ws"
    var kafkaBrokers = "127.0.0.1:9092"
    var oddsTopic = Topics.oddsUpdates
    var deadLetterTopic = Topics.oddsUpdatesDeadLetter
    /// Frames read but not yet acknowledged by Kafka; at the limit ingest stops reading.
    var maxInFlight = 10_000
    var reconnectMinimum: Duration = .milliseconds(100)
    var reconnectMaximum: Duration = .seconds(5)
    var kafkaLinger: Duration = .milliseconds(5)
    /// librdkafka gives up on a message after this long; ingest then re-enqueues it.
    var kafkaDeliveryTimeout: Duration = .seconds(300)
    /// How long a graceful shutdown waits for Kafka to acknowledge what was read.
    var drainTimeout: Duration = .seconds(30)
    /// The feed's id in heartbeats and the platform's status overlay: the `source` of its updates.
    var feedID = "supplier-simulator"
    var feedStatusTopic = Topics.feedStatus
    var heartbeatInterval: Duration = .seconds(1)
    /// No frame (not even alive) for this long: the supplier counts as silent.
    var silenceLimit: Duration = .milliseconds(2_500)
    /// A connection whose WebSocket upgrade is not answered within this long is abandoned.
    var handshakeTimeout: Duration = .seconds(10)

    init() {}

    init(reader: ConfigurationReader) throws {
        host = reader.string("HTTP_HOST", default: "0.0.0.0")
        metricsPort = try reader.port("METRICS_PORT", default: 9096)
        supplierURL = try reader.url("SUPPLIER_WS_URL", default: "ws://127.0.0.1:8081/ws", schemes: ["ws", "wss"]).absoluteString
        kafkaBrokers = try reader.hostAndPortList("KAFKA_BROKERS", default: "127.0.0.1:9092")
            .map(\.description).joined(separator: ",")
        oddsTopic = try Self.topic(reader, "KAFKA_TOPIC_ODDS", default: Topics.oddsUpdates)
        deadLetterTopic = try Self.topic(reader, "KAFKA_TOPIC_DLQ", default: Topics.oddsUpdatesDeadLetter)
        if oddsTopic == deadLetterTopic {
            throw ConfigurationError(key: "KAFKA_TOPIC_DLQ", reason: "must differ from KAFKA_TOPIC_ODDS (\(oddsTopic))")
        }
        maxInFlight = try reader.integer("INGEST_MAX_IN_FLIGHT", default: 10_000, range: 1...1_000_000)
        reconnectMinimum = try reader.milliseconds("INGEST_RECONNECT_MIN_MS", default: 100, range: 1...60_000)
        reconnectMaximum = try reader.milliseconds("INGEST_RECONNECT_MAX_MS", default: 5_000, range: 1...600_000)
        if reconnectMaximum < reconnectMinimum {
            throw ConfigurationError(key: "INGEST_RECONNECT_MAX_MS", reason: "must be at least INGEST_RECONNECT_MIN_MS")
        }
        kafkaLinger = try reader.milliseconds("KAFKA_LINGER_MS", default: 0, range: 0...1_000)
        kafkaDeliveryTimeout = try reader.milliseconds("KAFKA_DELIVERY_TIMEOUT_MS", default: 300_000, range: 10_000...3_600_000)
        drainTimeout = try reader.milliseconds("INGEST_DRAIN_TIMEOUT_MS", default: 30_000, range: 0...600_000)
        feedID = reader.string("INGEST_FEED_ID", default: "supplier-simulator")
        guard !feedID.isEmpty, feedID.utf8.count <= 64 else {
            throw ConfigurationError(key: "INGEST_FEED_ID", reason: "must be 1 to 64 characters, got \(feedID.utf8.count)")
        }
        feedStatusTopic = try Self.topic(reader, "KAFKA_TOPIC_FEED_STATUS", default: Topics.feedStatus)
        if [oddsTopic, deadLetterTopic].contains(feedStatusTopic) {
            throw ConfigurationError(key: "KAFKA_TOPIC_FEED_STATUS", reason: "must differ from the odds and dead-letter topics")
        }
        heartbeatInterval = try reader.milliseconds("INGEST_HEARTBEAT_MS", default: 1_000, range: 50...60_000)
        silenceLimit = try reader.milliseconds("INGEST_FEED_SILENT_MS", default: 2_500, range: 100...600_000)
        handshakeTimeout = try reader.milliseconds("INGEST_HANDSHAKE_TIMEOUT_MS", default: 10_000, range: 100...600_000)
    }

    /// Kafka's legal topic names: 1–249 of [A-Za-z0-9._-].
    static func topic(_ reader: ConfigurationReader, _ key: String, default defaultValue: String) throws -> String {
        let name = reader.string(key, default: defaultValue)
        let legal = !name.isEmpty && name.utf8.count <= 249 && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
        guard legal else {
            throw ConfigurationError(key: key, reason: "must be 1 to 249 characters of A-Z a-z 0-9 . _ -, got \"\(name)\"")
        }
        return name
    }
}
