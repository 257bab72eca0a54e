import Contracts
import Kafka

/// What to do with one polled batch, decided without I/O: which updates to write (newest per
/// market), which messages are poison (to the DLQ), and which offsets to commit once all the
/// effects are durable.
struct BatchPlan: Sendable {
    struct Poison: Sendable {
        let message: KafkaConsumerMessage
        let reason: InvalidFrame
    }

    /// At most one update per (event, market): the newest version in the batch.
    let updates: [OddsUpdate]
    let poison: [Poison]
    /// The next offset to consume per partition (last message's offset + 1).
    let commitPositions: [TopicPartitionOffset]
    let messageCount: Int
    /// Valid updates dropped because a newer version of the same market is in the same batch.
    let collapsedCount: Int

    init(messages: [KafkaConsumerMessage]) {
        var latest = LatestPerMarket()
        var poison: [Poison] = []
        var validCount = 0
        for message in messages {
            switch OddsUpdateValidator.validate(message.value) {
            case .success(let update):
                validCount += 1
                latest.offer(update)
            case .failure(let reason):
                poison.append(Poison(message: message, reason: reason))
            }
        }
        updates = latest.updates
        self.poison = poison
        commitPositions = TopicPartitionOffset.nextOffsets(after: messages)
        messageCount = messages.count
        collapsedCount = validCount - latest.count
    }

    /// The DLQ record of a poison message: original bytes, reason and origin in headers.
    static func deadLetter(_ poison: Poison, topic: String) -> KafkaProducerMessage {
        KafkaProducerMessage(
            topic: topic,
            key: poison.message.key,
            value: poison.message.value,
            headers: [
                KafkaHeader(key: DeadLetterHeaders.error, value: poison.reason.description),
                KafkaHeader(key: DeadLetterHeaders.source, value: "odds-processor"),
                KafkaHeader(key: DeadLetterHeaders.originalTopic, value: poison.message.topic),
                KafkaHeader(key: DeadLetterHeaders.originalPartition, value: String(poison.message.partition)),
                KafkaHeader(key: DeadLetterHeaders.originalOffset, value: String(poison.message.offset)),
            ])
    }
}
