import Contracts
import IntegrationSupport
import Kafka

/// The odds and dead-letter topics read back whole, each message with the odds-feed/2 headers
/// ingest stamped on it (`feed-epoch`, `feed-seq` or `feed-snapshot`, `feed-resume-after`).
struct FeedTopics: Sendable {
    struct Message: Sendable {
        let topic: String
        let epoch: UInt64?
        /// Stream frames only.
        let seq: Int?
        /// Snapshot frames only: the position the snapshot was taken at.
        let snapshot: Int?
        let resumeAfter: String?
        let value: String
    }

    let messages: [Message]

    /// Reads both topics until each holds at least the number given (then until quiet).
    static func read(_ world: PipelineWorld, odds: Int, deadLetters: Int) async throws -> FeedTopics {
        let raw = try await KafkaTopicReader.readAll(
            brokers: world.broker.bootstrap, topics: [Topics.oddsUpdates, Topics.oddsUpdatesDeadLetter],
            expected: [Topics.oddsUpdates: odds, Topics.oddsUpdatesDeadLetter: deadLetters], quiet: .seconds(2))
        return FeedTopics(messages: raw.map { message in
            let header = { (name: String) in message.headers.first(named: name).map { String(decoding: $0, as: UTF8.self) } }
            return Message(topic: message.topic, epoch: header(FeedHeaders.epoch).flatMap { UInt64($0) },
                           seq: header(FeedHeaders.seq).flatMap { Int($0) }, snapshot: header(FeedHeaders.snapshot).flatMap { Int($0) },
                           resumeAfter: header(FeedHeaders.resumeAfter), value: message.valueString)
        })
    }

    func count(topic: String) -> Int { messages.filter { $0.topic == topic }.count }

    /// Messages of `topic` from snapshots of `epoch`.
    func snapshotMessages(topic: String = Topics.oddsUpdates, epoch: UInt64) -> [Message] {
        messages.filter { $0.topic == topic && $0.epoch == epoch && $0.snapshot != nil }
    }

    /// The journal's stream frames that are not in Kafka at least once under their own position
    /// with their exact text: valid updates (the validator's verdict, re-sends included) in the
    /// odds topic, rejected frames in the dead-letter topic. Empty when ingest lost nothing.
    func missing(_ journal: JournalModel) -> (accepted: [JournalEntry], rejected: [JournalEntry]) {
        var byPosition: [String: [UInt64: [Int: Set<String>]]] = [:]
        for message in messages {
            guard let epoch = message.epoch, let seq = message.seq else { continue }
            byPosition[message.topic, default: [:]][epoch, default: [:]][seq, default: []].insert(message.value)
        }
        func holds(_ topic: String, _ entry: JournalEntry) -> Bool {
            byPosition[topic]?[entry.epoch]?[entry.seq]?.contains(entry.frame) == true
        }
        return (journal.acceptedEntries.filter { !holds(Topics.oddsUpdates, $0) },
                journal.rejected.map(\.entry).filter { !holds(Topics.oddsUpdatesDeadLetter, $0) })
    }

    /// Messages at a position the journal has, with other content than the journal's.
    func contradicting(_ journal: JournalModel) -> [String] {
        var frames: [Int: String] = [:]
        for entry in journal.entries { frames[entry.seq] = entry.frame }
        return messages.compactMap { message in
            guard message.epoch == journal.epoch, let seq = message.seq, let frame = frames[seq], frame != message.value else { return nil }
            return "\(message.topic) \(journal.epoch):\(seq): \(message.value.prefix(120))"
        }
    }
}
