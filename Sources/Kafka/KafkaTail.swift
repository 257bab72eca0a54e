import Logging

/// Reads the newest messages of topics: what a producer that restarts needs to know about what
/// it already wrote (for example, how far a feed it copies into Kafka got).
public enum KafkaTail {
    public struct Incomplete: Error, CustomStringConvertible {
        public let missing: [TopicPartition]
        public let timeout: Duration
        public var description: String {
            "the last messages of \(missing.map(\.description).joined(separator: ", ")) did not arrive within \(timeout)"
        }
    }

    /// The last `count` messages of every partition of `topics` (fewer where a partition holds
    /// fewer), sorted by topic, partition and offset. Topics the cluster does not know are
    /// skipped (nothing was written to them). Throws when the cluster cannot be reached or the
    /// messages do not all arrive within `timeout`.
    public static func lastMessages(
        brokers: String, topics: [String], perPartition count: Int,
        timeout: Duration = .seconds(10), logger: Logger
    ) async throws -> [KafkaConsumerMessage] {
        precondition(count > 0, "count must be positive")
        let deadline = ContinuousClock.now + timeout
        let admin = try KafkaAdmin(bootstrapServers: brokers, clientID: "kafka-tail", logger: logger)
        // A refused connection would otherwise hold the caller for the whole timeout.
        let metadata = try await admin.metadata(timeout: min(timeout, .seconds(2)))
        var configuration = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: "kafka-tail-reader")
        configuration.clientID = "kafka-tail"
        configuration.fetchMaxWait = .milliseconds(50)
        configuration.autoOffsetReset = .earliest
        let consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        do {
            // Per partition: read from `start` up to the message before `end`.
            var ranges: [TopicPartition: (start: Int64, end: Int64)] = [:]
            for topic in topics {
                guard let partitions = metadata.topics[topic] else { continue }
                for partition in 0..<Int32(partitions) {
                    let key = TopicPartition(topic: topic, partition: partition)
                    let marks = try await consumer.watermarks(of: key, timeout: max(.milliseconds(100), deadline - .now))
                    if marks.high > marks.low {
                        ranges[key] = (max(marks.low, marks.high - Int64(count)), marks.high)
                    }
                }
            }
            var messages: [KafkaConsumerMessage] = []
            if !ranges.isEmpty {
                try consumer.assign(ranges.map { TopicPartitionOffset($0.key, offset: $0.value.start) })
                var pending = Set(ranges.keys)
                while !pending.isEmpty {
                    guard ContinuousClock.now < deadline else { throw Incomplete(missing: pending.sorted(), timeout: timeout) }
                    for message in try await consumer.poll(maxMessages: 10_000, maxWait: .milliseconds(100)) {
                        let key = TopicPartition(topic: message.topic, partition: message.partition)
                        guard let range = ranges[key], message.offset < range.end else { continue }
                        messages.append(message)
                        if message.offset == range.end - 1 { pending.remove(key) }
                    }
                }
            }
            try await consumer.close()
            return messages.sorted { ($0.topic, $0.partition, $0.offset) < ($1.topic, $1.partition, $1.offset) }
        } catch {
            try? await consumer.close()
            throw error
        }
    }
}
