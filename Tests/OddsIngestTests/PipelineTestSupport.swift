import Contracts
import Foundation
import IntegrationSupport
import Kafka
import Logging
import Testing

/// Real processes for the ingest integration tests: a private kafka-dev-broker, the
/// supplier-simulator and odds-ingest binaries, all on free ports.
struct FeedEndpoints {
    let supplierHTTP: Int
    let supplierMetrics: Int
    let ingestMetrics: Int

    init() throws {
        supplierHTTP = try TestInfrastructure.freePort()
        supplierMetrics = try TestInfrastructure.freePort()
        ingestMetrics = try TestInfrastructure.freePort()
    }

    var feedURL: String { "ws://127.0.0.1:\(supplierHTTP)/ws" }
    var ingestURL: String { "http://127.0.0.1:\(ingestMetrics)" }
    var supplierMetricsURL: String { "http://127.0.0.1:\(supplierMetrics)" }
}

enum Pipeline {
    static func binary(_ name: String) throws -> URL {
        try TestInfrastructure.binDirectory().appendingPathComponent(name)
    }

    static func journalPath(_ label: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString).jsonl").path
    }

    static func startSupplier(_ endpoints: FeedEndpoints, environment: [String: String]) async throws -> ManagedProcess {
        var env = ["HTTP_HOST": "127.0.0.1", "HTTP_PORT": "\(endpoints.supplierHTTP)",
                   "METRICS_PORT": "\(endpoints.supplierMetrics)", "LOG_FORMAT": "text"]
        env.merge(environment) { $1 }
        return try await ManagedProcess.launch("supplier-simulator", environment: env, metricsPort: endpoints.supplierMetrics,
                                               waitFor: "/readyz")
    }

    static func startIngest(_ endpoints: FeedEndpoints, brokers: String, environment: [String: String] = [:]) async throws -> ManagedProcess {
        var env = ["HTTP_HOST": "127.0.0.1", "METRICS_PORT": "\(endpoints.ingestMetrics)", "KAFKA_BROKERS": brokers,
                   "SUPPLIER_WS_URL": endpoints.feedURL, "LOG_FORMAT": "text", "INGEST_RECONNECT_MAX_MS": "1000"]
        env.merge(environment) { $1 }
        return try await ManagedProcess.launch("odds-ingest", environment: env, metricsPort: endpoints.ingestMetrics)
    }

    /// received / published (odds topic) / dead-lettered counters of ingest.
    struct IngestCounters: Equatable, CustomStringConvertible {
        let received: Int
        let published: Int
        let deadLettered: Int
        var acknowledged: Int { published + deadLettered }
        var description: String { "received \(received), published \(published), dead-lettered \(deadLettered)" }
    }

    static func ingestCounters(_ endpoints: FeedEndpoints) async throws -> IngestCounters {
        let text = try await HTTP.get("\(endpoints.ingestURL)/metrics").body
        return IngestCounters(
            received: Int(MetricsText.value("odds_ingest_received_total", in: text)),
            published: Int(MetricsText.value("odds_ingest_published_total", in: text)),
            deadLettered: Int(MetricsText.sum(prefix: "odds_dlq_total{", in: text)))
    }

    /// Waits until ingest has read `expected` frames and Kafka acknowledged all of them.
    @discardableResult
    static func waitForIngest(_ endpoints: FeedEndpoints, toAcknowledge expected: Int, timeout: Duration = .seconds(60)) async throws -> IngestCounters {
        var last = IngestCounters(received: -1, published: -1, deadLettered: -1)
        let done = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(100)) {
            last = try await ingestCounters(endpoints)
            return last.received == expected && last.acknowledged == expected
        }
        try #require(done, "ingest did not acknowledge \(expected) frames: \(last)")
        return last
    }

    /// Everything in the odds topic and the DLQ, read until the expected counts arrive and then a
    /// quiet second passes (so extras would be seen).
    static func consume(brokers: String, odds: Int, deadLetters: Int) async throws -> (odds: [KafkaConsumerMessage], deadLetters: [KafkaConsumerMessage]) {
        let ordered = try await KafkaTopicReader.readAll(
            brokers: brokers, topics: [Topics.oddsUpdates, Topics.oddsUpdatesDeadLetter],
            expected: [Topics.oddsUpdates: odds, Topics.oddsUpdatesDeadLetter: deadLetters])
        return (ordered.filter { $0.topic == Topics.oddsUpdates }, ordered.filter { $0.topic == Topics.oddsUpdatesDeadLetter })
    }

    static func eventId(of frame: String) throws -> String {
        try OddsUpdateValidator.validate(frame).get().eventId
    }

    /// Per event, the odds-topic values in partition order; also checks key = event_id and one
    /// partition per event.
    static func valuesByEvent(_ messages: [KafkaConsumerMessage]) throws -> [String: [String]] {
        var values: [String: [String]] = [:]
        var partitions: [String: Int32] = [:]
        for message in messages {
            let event = try eventId(of: message.valueString)
            #expect(message.keyString == event)
            if let known = partitions[event] { #expect(known == message.partition) }
            partitions[event] = message.partition
            values[event, default: []].append(message.valueString)
        }
        return values
    }

    /// Every valid journal frame (valid, duplicate, out-of-order) is in the odds topic with equal
    /// content and in per-event order; every invalid one is in the DLQ, in order, with its
    /// reason; nothing else is in either topic.
    static func expectTopicsMatchJournal(_ entries: [JournalEntry], odds: [KafkaConsumerMessage], deadLetters: [KafkaConsumerMessage]) throws {
        let valid = entries.filter { ["valid", "duplicate", "out_of_order"].contains($0.kind) }
        let invalid = entries.filter { ["malformed", "invalid"].contains($0.kind) }
        #expect(odds.count == valid.count, "odds topic holds \(odds.count) messages, the journal \(valid.count) valid frames")
        #expect(deadLetters.count == invalid.count, "DLQ holds \(deadLetters.count) messages, the journal \(invalid.count) invalid frames")

        var expected: [String: [String]] = [:]
        for entry in valid { expected[try eventId(of: entry.frame), default: []].append(entry.frame) }
        let actual = try valuesByEvent(odds)
        #expect(Set(actual.keys) == Set(expected.keys))
        for (event, frames) in expected {
            expectSameFrames(actual[event] ?? [], frames, "event \(event)")
        }

        #expect(Set(deadLetters.map(\.partition)).count <= 1)
        for (message, entry) in zip(deadLetters, invalid) {
            #expect(message.valueString == entry.frame)
            let error = message.headers.first(named: DeadLetterHeaders.error).map { String(decoding: $0, as: UTF8.self) } ?? ""
            #expect(error.hasPrefix(entry.reason ?? "?"), "DLQ error header \(error) for a frame journaled as \(entry.reason ?? "-")")
            #expect(message.headers.first(named: DeadLetterHeaders.source) == Array("odds-ingest".utf8))
        }
    }
}

/// Compares two frame sequences and, when they differ, reports the counts and the first
/// difference instead of dumping megabytes of frames.
func expectSameFrames(_ actual: [String], _ expected: [String], _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual != expected else { return }
    let firstDifference = zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        ?? min(actual.count, expected.count)
    Issue.record("""
        \(context): frames differ: \(actual.count) published, \(expected.count) expected; first difference at index \(firstDifference): \
        published \(firstDifference < actual.count ? actual[firstDifference] : "nothing"), \
        expected \(firstDifference < expected.count ? expected[firstDifference] : "nothing")
        """, sourceLocation: sourceLocation)
}
