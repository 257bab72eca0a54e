import Foundation
import IntegrationSupport
import Kafka
import Logging

/// Shared settings and helpers for the Kafka integration tests (real dev broker, real sockets).
enum KafkaTest {
    static var logger: Logger {
        var logger = Logger(label: "kafka-tests")
        logger.logLevel = .warning
        return logger
    }

    static func producer(_ brokers: String, configure: (inout KafkaProducerConfiguration) -> Void = { _ in }) throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(bootstrapServers: brokers)
        configuration.linger = .milliseconds(2)
        configuration.clientID = "kafka-tests"
        configure(&configuration)
        return try KafkaProducer(configuration: configuration, logger: logger)
    }

    /// Short session and heartbeat: the dev broker makes a group wait up to the session timeout.
    static func consumer(_ brokers: String, group: String, topics: [String], configure: (inout KafkaConsumerConfiguration) -> Void = { _ in }) throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: group)
        configuration.sessionTimeout = .milliseconds(6_000)
        configuration.heartbeatInterval = .milliseconds(500)
        configuration.fetchMaxWait = .milliseconds(10)
        configuration.autoOffsetReset = .earliest
        configuration.clientID = "kafka-tests"
        configure(&configuration)
        return try KafkaConsumer(configuration: configuration, topics: topics, logger: logger)
    }

    struct Timeout: Error, CustomStringConvertible {
        let description: String
    }

    /// Polls (committing each batch after "processing" it, if asked) until `done` says so.
    static func consume(
        _ consumer: KafkaConsumer,
        commit: Bool = true,
        timeout: Duration = .seconds(45),
        until done: ([KafkaConsumerMessage]) -> Bool
    ) async throws -> [KafkaConsumerMessage] {
        var received: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now + timeout
        while !done(received) {
            guard ContinuousClock.now < deadline else {
                throw Timeout(description: "consumed \(received.count) message(s) before timing out")
            }
            let batch = try await consumer.poll(maxMessages: 500, maxWait: .milliseconds(100))
            received += batch
            if commit && !batch.isEmpty { try await consumer.commit(messages: batch) }
        }
        return received
    }

    /// Keeps polling for `quiet` and returns anything that still arrived (should be nothing).
    static func drain(_ consumer: KafkaConsumer, quiet: Duration = .seconds(1)) async throws -> [KafkaConsumerMessage] {
        var extra: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now + quiet
        while ContinuousClock.now < deadline {
            extra += try await consumer.poll(maxMessages: 500, maxWait: .milliseconds(100))
        }
        return extra
    }

    /// Sends `count` messages one by one (each acknowledged), returning their reports in order.
    static func sendAll(_ producer: KafkaProducer, _ messages: [KafkaProducerMessage]) async throws -> [KafkaDeliveryReport] {
        var reports: [KafkaDeliveryReport] = []
        for message in messages { reports.append(try await producer.send(message)) }
        return reports
    }

    /// Enqueues all messages while a second task reads the delivery reports; returns them.
    static func enqueueAll(_ producer: KafkaProducer, _ messages: [KafkaProducerMessage]) async throws -> [KafkaDeliveryReport] {
        try await withThrowingTaskGroup(of: [KafkaDeliveryReport].self) { group in
            group.addTask {
                var reports: [KafkaDeliveryReport] = []
                for await report in producer.deliveryReports {
                    reports.append(report)
                    if reports.count == messages.count { break }
                }
                return reports
            }
            group.addTask {
                for message in messages { try await producer.enqueue(message) }
                return []
            }
            var all: [KafkaDeliveryReport] = []
            for try await reports in group { all += reports }
            return all
        }
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
}

extension KafkaConsumerMessage {
    var id: String { "\(topic)/\(partition)/\(offset)" }
}
