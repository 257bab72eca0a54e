import CRDKafka

/// One partition of one topic.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A position in a partition. For commits, `offset` is the *next* offset to consume (Kafka's
/// convention): committing offset 10 means messages 0...9 are done.
public struct TopicPartitionOffset: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public init(_ topicPartition: TopicPartition, offset: Int64) {
        self.init(topic: topicPartition.topic, partition: topicPartition.partition, offset: offset)
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
    public var description: String { "\(topic)[\(partition)]@\(offset)" }

    /// The commit positions that mark `messages` as processed: per partition, the highest
    /// offset seen plus one.
    public static func nextOffsets(after messages: some Sequence<KafkaConsumerMessage>) -> [TopicPartitionOffset] {
        var highest: [TopicPartition: Int64] = [:]
        for message in messages {
            let key = TopicPartition(topic: message.topic, partition: message.partition)
            if let current = highest[key], current >= message.offset { continue }
            highest[key] = message.offset
        }
        return highest.sorted { $0.key < $1.key }.map { TopicPartitionOffset($0.key, offset: $0.value + 1) }
    }
}

/// A Kafka record header. A header sent with a null value is read back with an empty value.
public struct KafkaHeader: Hashable, Sendable, CustomStringConvertible {
    public var key: String
    public var value: [UInt8]

    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }

    public init(key: String, value: String) {
        self.init(key: key, value: Array(value.utf8))
    }

    public var stringValue: String { String(decoding: value, as: UTF8.self) }
    public var description: String { "\(key)=\(stringValue)" }
}

extension Array where Element == KafkaHeader {
    /// The value of the first header named `key`.
    public func first(named key: String) -> [UInt8]? {
        first { $0.key == key }?.value
    }
}

/// A message to produce. `partition == nil` lets the partitioner pick by key (librdkafka's
/// default `consistent_random`: same key, same partition).
public struct KafkaProducerMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    public init(topic: String, partition: Int32? = nil, key: String?, value: String, headers: [KafkaHeader] = []) {
        self.init(topic: topic, partition: partition, key: key.map { Array($0.utf8) }, value: Array(value.utf8), headers: headers)
    }
}

/// Identifies a message handed to `KafkaProducer.enqueue(_:)` in its delivery report.
public struct KafkaMessageID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// The broker's answer for one produced message.
public struct KafkaDeliveryReport: Sendable, Hashable {
    /// Set for messages that went through `enqueue`; nil for `send` (the caller awaits it directly).
    public let id: KafkaMessageID?
    public let topic: String
    public let partition: Int32
    /// Offset the broker assigned; -1 when delivery failed (or acks=0).
    public let offset: Int64
    public let key: [UInt8]?
    /// nil when the broker acknowledged the message.
    public let error: KafkaError?
    /// Time from produce call to acknowledgement, measured by librdkafka (microseconds).
    public let latencyMicroseconds: Int64

    public var isDelivered: Bool { error == nil }
    public var latency: Duration { .microseconds(latencyMicroseconds) }
}

/// A consumed message; all bytes are copied out of librdkafka's buffers.
public struct KafkaConsumerMessage: Sendable, Hashable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    public let key: [UInt8]?
    public let value: [UInt8]
    public let headers: [KafkaHeader]
    /// Milliseconds since the Unix epoch (create or log-append time), nil if the broker gave none.
    public let timestampMilliseconds: Int64?

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], timestampMilliseconds: Int64?) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    public var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
    /// Position to commit once this message is processed.
    public var nextPosition: TopicPartitionOffset { TopicPartitionOffset(topic: topic, partition: partition, offset: offset + 1) }
    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
    public var valueString: String { String(decoding: value, as: UTF8.self) }
}

/// A change of the partitions this group member owns.
public enum KafkaRebalanceEvent: Sendable, Hashable {
    /// Partitions now owned; consumption resumes at their committed offsets.
    case assigned([TopicPartition])
    /// Partitions no longer owned; buffered messages of these partitions were discarded.
    case revoked([TopicPartition])
}

extension Duration {
    /// Whole milliseconds, clamped to librdkafka's `int` timeouts.
    var kafkaMilliseconds: Int32 {
        let (seconds, attoseconds) = components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: max(0, milliseconds))
    }
}
