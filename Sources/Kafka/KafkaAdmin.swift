import CRDKafka
import Logging

/// Cluster-level operations and health checks. Holds one librdkafka client (connections are
/// kept, so repeated health checks are cheap); blocking calls run on its own thread.
public final class KafkaAdmin: Sendable {
    public enum TopicCreationResult: Sendable, Hashable {
        case created
        case alreadyExists
        /// The broker has no CreateTopics API (e.g. the dev broker): create topics another way
        /// (dev broker `--topic`, or broker auto-creation on first use).
        case unsupported(reason: String)
    }

    public struct ClusterMetadata: Sendable, Hashable {
        public let brokerCount: Int
        /// Partition count per topic (only topics without an error).
        public let topics: [String: Int]
    }

    public let bootstrapServers: String
    private let client: RDKafkaClient
    private let worker: BlockingWorker
    private let logger: Logger

    public init(bootstrapServers: String, clientID: String = "odds-pipeline-admin", properties: [String: String] = [:], logger: Logger = Logger(label: "kafka.admin")) throws {
        var all = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            // Health checks should report "down" promptly rather than wait on backoff.
            "reconnect.backoff.ms": "50",
            "reconnect.backoff.max.ms": "1000",
        ]
        all.merge(properties) { _, passThrough in passThrough }
        self.bootstrapServers = bootstrapServers
        self.logger = logger
        client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: all, callbacks: RDKafkaCallbacks(logger: logger, onError: { error in
            logger.debug("kafka admin client error", metadata: ["error": "\(error)"])
        }))
        worker = BlockingWorker(name: "kafka-admin")
    }

    deinit {
        worker.stop()
    }

    /// True when a broker answered a metadata request within `timeout`.
    public func isReachable(timeout: Duration = .seconds(2)) async -> Bool {
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        let code = try? await worker.run { () -> Int32 in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let code = rd_kafka_metadata(client.handle, 0, nil, &metadata, milliseconds)
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            return code.rawValue
        }
        return code == RD_KAFKA_RESP_ERR_NO_ERROR.rawValue
    }

    /// One-shot reachability check with a temporary client.
    public static func isReachable(bootstrapServers: String, timeout: Duration = .seconds(2), logger: Logger = Logger(label: "kafka.admin")) async -> Bool {
        guard let admin = try? KafkaAdmin(bootstrapServers: bootstrapServers, logger: logger) else { return false }
        return await admin.isReachable(timeout: timeout)
    }

    /// Brokers and topics (with partition counts) the cluster reports.
    public func metadata(timeout: Duration = .seconds(5)) async throws -> ClusterMetadata {
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        return try await worker.run {
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let code = rd_kafka_metadata(client.handle, 1, nil, &metadata, milliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError(code, context: "fetch cluster metadata")
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            var topics: [String: Int] = [:]
            for index in 0..<Int(metadata.pointee.topic_cnt) {
                let topic = metadata.pointee.topics[index]
                guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                topics[String(cString: topic.topic)] = Int(topic.partition_cnt)
            }
            return ClusterMetadata(brokerCount: Int(metadata.pointee.broker_cnt), topics: topics)
        }
    }

    /// Partition count of `topic`, or nil if the cluster does not know it.
    public func partitionCount(of topic: String, timeout: Duration = .seconds(5)) async throws -> Int? {
        try await metadata(timeout: timeout).topics[topic]
    }

    /// Creates `name` where the broker supports the CreateTopics API; returns `.unsupported`
    /// (and logs) where it does not, so callers can carry on.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1, timeout: Duration = .seconds(10)) async throws -> TopicCreationResult {
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        let (code, message) = try await worker.run { () -> (Int32, String) in
            var errorText = [CChar](repeating: 0, count: 512)
            guard let newTopic = rd_kafka_NewTopic_new(name, Int32(partitions), Int32(replicationFactor), &errorText, errorText.count) else {
                throw KafkaError.invalidArgument(RDKafkaClient.string(errorText), context: "create topic \(name)")
            }
            defer { rd_kafka_NewTopic_destroy(newTopic) }
            let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
            defer { rd_kafka_AdminOptions_destroy(options) }
            _ = rd_kafka_AdminOptions_set_request_timeout(options, milliseconds, &errorText, errorText.count)
            _ = rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds, &errorText, errorText.count)
            let queue = rd_kafka_queue_new(client.handle)
            defer { rd_kafka_queue_destroy(queue) }
            var topics: [OpaquePointer?] = [newTopic]
            rd_kafka_CreateTopics(client.handle, &topics, 1, options, queue)
            guard let event = rd_kafka_queue_poll(queue, milliseconds + 1_000) else {
                return (RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue, "no CreateTopics result within \(milliseconds) ms")
            }
            defer { rd_kafka_event_destroy(event) }
            let eventError = rd_kafka_event_error(event)
            if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
                return (eventError.rawValue, rd_kafka_event_error_string(event).map { String(cString: $0) } ?? "")
            }
            guard let result = rd_kafka_event_CreateTopics_result(event) else {
                return (RD_KAFKA_RESP_ERR__FAIL.rawValue, "unexpected admin event")
            }
            var count = 0
            guard let results = rd_kafka_CreateTopics_result_topics(result, &count), count > 0, let first = results[0] else {
                return (RD_KAFKA_RESP_ERR__FAIL.rawValue, "empty CreateTopics result")
            }
            return (rd_kafka_topic_result_error(first).rawValue, rd_kafka_topic_result_error_string(first).map { String(cString: $0) } ?? "")
        }
        switch rd_kafka_resp_err_t(rawValue: code) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            logger.info("kafka topic created", metadata: ["kafka.topic": "\(name)", "partitions": "\(partitions)"])
            return .created
        case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
            return .alreadyExists
        case RD_KAFKA_RESP_ERR__TIMED_OUT where message.contains("controller"):
            // librdkafka sends CreateTopics to the controller; the dev broker (librdkafka's mock)
            // never names one, so the request cannot even be sent.
            let reason = "no controller broker reachable (\(message)); the dev broker has none"
            logger.notice("kafka CreateTopics unavailable; relying on existing or auto-created topic", metadata: ["kafka.topic": "\(name)", "reason": "\(reason)"])
            return .unsupported(reason: reason)
        case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE, RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION, RD_KAFKA_RESP_ERR_INVALID_REQUEST:
            let reason = "\(KafkaError.Code(rawValue: code).name): \(message)"
            logger.notice("kafka broker does not support CreateTopics; relying on existing or auto-created topic", metadata: ["kafka.topic": "\(name)", "reason": "\(reason)"])
            return .unsupported(reason: reason)
        default:
            throw KafkaError(code: KafkaError.Code(rawValue: code), message: message.isEmpty ? nil : message, context: "create topic \(name)")
        }
    }
}
