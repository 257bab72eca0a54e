import Contracts
import Kafka

/// Where one feed frame goes, decided by the contract validator alone (no I/O).
enum RoutedFrame: Sendable {
    /// A valid OddsUpdate: to the odds topic, keyed by event_id, value = the frame's bytes.
    case publish(KafkaProducerMessage, update: OddsUpdate)
    /// An invalid frame: to the DLQ, value = the original bytes, reason in the `error` header.
    case deadLetter(KafkaProducerMessage, reason: InvalidFrame)
    /// Not an odds-feed/2 frame at all: to the DLQ as it came, with no position.
    case unreadable(KafkaProducerMessage)

    var message: KafkaProducerMessage {
        switch self {
        case .publish(let message, _), .deadLetter(let message, _), .unreadable(let message): message
        }
    }
}

struct FrameRouter: Sendable {
    static let source = "odds-ingest"

    let oddsTopic: String
    let deadLetterTopic: String

    /// Valid payloads are published exactly as received: they already are OddsUpdate v1 JSON,
    /// and keeping the bytes means what lands in Kafka is what the supplier sent. `feedHeaders`
    /// (the frame's stream position) go on either topic.
    func route(_ payload: [UInt8], feedHeaders: [KafkaHeader] = []) -> RoutedFrame {
        switch OddsUpdateValidator.validate(payload) {
        case .success(let update):
            return .publish(KafkaProducerMessage(topic: oddsTopic, key: Array(update.eventId.utf8), value: payload, headers: feedHeaders),
                            update: update)
        case .failure(let invalid):
            return deadLetter(payload, error: invalid.description, feedHeaders: feedHeaders, reason: invalid)
        }
    }

    /// A feed frame whose envelope cannot be read: to the DLQ as it came, without a position.
    func routeUnreadable(_ frame: [UInt8], error: FeedFrame.Invalid) -> RoutedFrame {
        .unreadable(deadLetterMessage(frame, error: "\(InvalidFeedFrame.code): \(error.description)", feedHeaders: []))
    }

    private func deadLetter(_ payload: [UInt8], error: String, feedHeaders: [KafkaHeader], reason: InvalidFrame) -> RoutedFrame {
        .deadLetter(deadLetterMessage(payload, error: error, feedHeaders: feedHeaders), reason: reason)
    }

    private func deadLetterMessage(_ value: [UInt8], error: String, feedHeaders: [KafkaHeader]) -> KafkaProducerMessage {
        let headers = [
            KafkaHeader(key: DeadLetterHeaders.error, value: error),
            KafkaHeader(key: DeadLetterHeaders.source, value: Self.source),
        ] + feedHeaders
        return KafkaProducerMessage(topic: deadLetterTopic, key: nil, value: value, headers: headers)
    }
}

/// The DLQ `error` prefix of frames that are not odds-feed/2 frames at all.
enum InvalidFeedFrame {
    static let code = "invalid_feed_frame"
}
