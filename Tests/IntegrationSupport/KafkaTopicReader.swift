import Kafka
import Logging

/// Reads whole topics of a (test) broker with a fresh consumer group.
public enum KafkaTopicReader {
    /// Every message of `topics` from the beginning, read until each topic in `expected` holds at
    /// least that many (at most `timeout`), then until no message came for `quiet`, so that
    /// extras would be seen. Sorted by topic, partition and offset.
    public static func readAll(
        brokers: String,
        topics: [String],
        expected: [String: Int],
        timeout: Duration = .seconds(60),
        quiet: Duration = .seconds(1)
    ) async throws -> [KafkaConsumerMessage] {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: TestInfrastructure.uniqueName("topic-reader"))
        configuration.sessionTimeout = .milliseconds(6_000)
        configuration.heartbeatInterval = .milliseconds(500)
        configuration.fetchMaxWait = .milliseconds(10)
        configuration.autoOffsetReset = .earliest
        var logger = Logger(label: "test.topic-reader")
        logger.logLevel = .warning
        let consumer = try KafkaConsumer(configuration: configuration, topics: topics, logger: logger)
        var received: [KafkaConsumerMessage] = []
        var counts: [String: Int] = [:]
        func poll() async throws {
            let batch = try await consumer.poll(maxMessages: 2_000, maxWait: .milliseconds(100))
            for message in batch { counts[message.topic, default: 0] += 1 }
            received += batch
        }
        let deadline = ContinuousClock.now + timeout
        while expected.contains(where: { counts[$0.key, default: 0] < $0.value }) && ContinuousClock.now < deadline {
            try await poll()
        }
        var quietEnd = ContinuousClock.now + quiet
        while ContinuousClock.now < quietEnd && ContinuousClock.now < deadline + quiet {
            let before = received.count
            try await poll()
            if received.count > before { quietEnd = ContinuousClock.now + quiet }
        }
        try await consumer.close()
        return received.sorted { ($0.topic, $0.partition, $0.offset) < ($1.topic, $1.partition, $1.offset) }
    }
}
