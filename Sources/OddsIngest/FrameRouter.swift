import Contracts
import Kafka

/// Where one feed frame goes, decided by the contract validator alone (no I/O).
enum RoutedFrame: Sendable {
    /// A valid OddsUpdate: to the odds topic, keyed by event_id, value = the frame's bytes.
    case publish(KafkaProducerMessage, update: OddsUpdate)
    /// An invalid frame: to the DLQ, value = the original bytes, reason in the `error` header.
    case deadLetter(KafkaProducerMessage, reason: InvalidFrame)

    var message: KafkaProducerMessage {
        switch self {
        case .publish(let message, _), .deadLetter(let message, _): message
        }
    }
}

struct FrameRouter: Sendable {
    static let source = "odds-ingest"

    let oddsTopic: String
    let deadLetterTopic: String

    /// Valid frames are published exactly as received: they already are OddsUpdate v1 JSON,
    /// and keeping the bytes means what lands in Kafka is what the supplier sent.
    func route(_ frame: [UInt8]) -> RoutedFrame {
        switch OddsUpdateValidator.validate(frame) {
        case .success(let update):
            return .publish(KafkaProducerMessage(topic: oddsTopic, key: Array(update.eventId.utf8), value: frame), update: update)
        case .failure(let invalid):
            let headers = [
                KafkaHeader(key: DeadLetterHeaders.error, value: invalid.description),
                KafkaHeader(key: DeadLetterHeaders.source, value: Self.source),
            ]
            return .deadLetter(KafkaProducerMessage(topic: deadLetterTopic, key: nil, value: frame, headers: headers), reason: invalid)
        }
    }
}
