import Contracts
import Foundation
import Kafka
import ServiceSupport
import Testing
import Synchronization
@testable import OddsIngest

@Suite("Ingest routing, backoff, window and configuration (pure logic)")
struct IngestLogicTests {
    static let validFrame = #"{"away_team":"Palmeiras","event_id":"MATCH_001","home_team":"Flamengo","market":"1x2","odds":{"away":3.6,"draw":3.3,"home":2.15},"source":"supplier-simulator","status":"open","updated_at":"2026-11-22T10:15:30.123Z","version":42}"#

    @Test("a valid frame goes to the odds topic, keyed by event_id, with its exact bytes")
    func routesValidFrames() throws {
        let router = FrameRouter(oddsTopic: "odds", deadLetterTopic: "dlq")
        let bytes = Array(Self.validFrame.utf8)
        guard case .publish(let message, let update) = router.route(bytes) else {
            Issue.record("valid frame was not published")
            return
        }
        #expect(message.topic == "odds")
        #expect(message.key == Array("MATCH_001".utf8))
        #expect(message.value == bytes)
        #expect(message.headers.isEmpty)
        #expect(update.version == 42)
    }

    @Test("an invalid frame goes to the DLQ with its original bytes, the reason and the source",
          arguments: [
            ("{\"event_id\":", ValidationCode.malformedJSON),
            (validFrame.replacingOccurrences(of: "2.15", with: "0.95"), .priceOutOfRange),
            (validFrame.replacingOccurrences(of: "2.15", with: "2.1234"), .pricePrecision),
            (validFrame.replacingOccurrences(of: "\"version\":42", with: "\"version\":0"), .invalidVersion),
            ("[]", .notAnObject),
            (String(repeating: " ", count: 17_000) + validFrame, .oversize),
          ])
    func routesInvalidFrames(frame: String, code: ValidationCode) throws {
        let router = FrameRouter(oddsTopic: "odds", deadLetterTopic: "dlq")
        let bytes = Array(frame.utf8)
        guard case .deadLetter(let message, let reason) = router.route(bytes) else {
            Issue.record("invalid frame was published: \(frame)")
            return
        }
        #expect(reason.primaryCode == code)
        #expect(message.topic == "dlq")
        #expect(message.value == bytes)
        let error = try #require(message.headers.first(named: DeadLetterHeaders.error))
        #expect(String(decoding: error, as: UTF8.self).hasPrefix(code.rawValue))
        #expect(message.headers.first(named: DeadLetterHeaders.source) == Array("odds-ingest".utf8))
    }

    @Test("a frame's feed headers (position, claim) go with it to either topic, unchanged")
    func routesFeedHeaders() throws {
        let router = FrameRouter(oddsTopic: "odds", deadLetterTopic: "dlq")
        let headers = [KafkaHeader(key: FeedHeaders.epoch, value: "1796000000000000"), KafkaHeader(key: FeedHeaders.seq, value: "42"),
                       KafkaHeader(key: FeedHeaders.resumeAfter, value: "1796000000000000:40")]
        guard case .publish(let published, _) = router.route(Array(Self.validFrame.utf8), feedHeaders: headers) else {
            Issue.record("valid frame was not published")
            return
        }
        #expect(published.headers == headers)
        #expect(published.value == Array(Self.validFrame.utf8))
        let invalid = Self.validFrame.replacingOccurrences(of: "2.15", with: "0.95")
        guard case .deadLetter(let deadLetter, _) = router.route(Array(invalid.utf8), feedHeaders: headers) else {
            Issue.record("invalid frame was published")
            return
        }
        #expect(deadLetter.topic == "dlq")
        #expect(deadLetter.value == Array(invalid.utf8))
        #expect(Array(deadLetter.headers.suffix(headers.count)) == headers)
        #expect(deadLetter.headers.first(named: DeadLetterHeaders.error).map { String(decoding: $0, as: UTF8.self) }?
            .hasPrefix(ValidationCode.priceOutOfRange.rawValue) == true)
    }

    @Test("a feed frame whose envelope cannot be read goes to the DLQ as it came, with the reason and no feed header")
    func routesUnreadableFeedFrames() throws {
        let router = FrameRouter(oddsTopic: "odds", deadLetterTopic: "dlq")
        let frame = Array(#"{"type":"odds","epoch":7,"payload":"{}"}"#.utf8)
        let parseError: FeedFrame.Invalid
        do {
            _ = try FeedFrame.parse(frame)
            Issue.record("a frame without seq was read")
            return
        } catch {
            parseError = error
        }
        guard case .unreadable(let message) = router.routeUnreadable(frame, error: parseError) else {
            Issue.record("not routed as unreadable")
            return
        }
        #expect(message.topic == "dlq")
        #expect(message.key == nil)
        #expect(message.value == frame)
        let error = try #require(message.headers.first(named: DeadLetterHeaders.error))
        #expect(String(decoding: error, as: UTF8.self).hasPrefix("invalid_feed_frame: "))
        #expect(message.headers.first(named: DeadLetterHeaders.source) == Array("odds-ingest".utf8))
        for name in [FeedHeaders.epoch, FeedHeaders.seq, FeedHeaders.snapshot, FeedHeaders.resumeAfter] {
            #expect(message.headers.first(named: name) == nil, "\(name) on an unreadable frame")
        }
    }

    @Test("reconnect backoff grows exponentially with jitter, is capped, and resets")
    func backoff() {
        var backoff = ReconnectBackoff(minimum: .milliseconds(100), maximum: .seconds(5))
        var ceilings: [Duration] = []
        for _ in 0..<10 {
            let ceiling = backoff.ceiling
            ceilings.append(ceiling)
            let low = backoff.nextDelay(unit: 0)
            #expect(low == ceiling / 2)
        }
        #expect(ceilings.prefix(7) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                                       .milliseconds(1_600), .milliseconds(3_200), .seconds(5)])
        #expect(ceilings.suffix(3).allSatisfy { $0 == .seconds(5) })
        var jittered = ReconnectBackoff(minimum: .milliseconds(100), maximum: .seconds(5))
        for _ in 0..<40 { _ = jittered.nextDelay() }
        let delays = (0..<200).map { _ in jittered.nextDelay() }
        #expect(delays.allSatisfy { $0 >= .milliseconds(2_500) && $0 <= .seconds(5) })
        #expect(Set(delays).count > 100, "jitter spreads the delays")
        jittered.reset()
        #expect(jittered.ceiling == .milliseconds(100))
        var huge = ReconnectBackoff(minimum: .seconds(1), maximum: .seconds(30))
        for _ in 0..<200 { _ = huge.nextDelay() }
        #expect(huge.ceiling == .seconds(30))
    }

    @Test("the in-flight window blocks at capacity and hands slots over in order")
    func window() async throws {
        let window = InFlightWindow(capacity: 2)
        try await window.acquire()
        try await window.acquire()
        #expect(window.inFlight == 2)
        let acquired = Task {
            try await window.acquire()
            return true
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(window.inFlight == 2)
        window.release()
        #expect(try await acquired.value)
        #expect(window.inFlight == 2)
        window.release()
        window.release()
        #expect(window.inFlight == 0)

        let full = InFlightWindow(capacity: 1)
        try await full.acquire()
        let cancelled = Task { try await full.acquire() }
        try await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        await #expect(throws: InFlightWindow.Cancelled.self) { try await cancelled.value }
        full.release()
        #expect(full.inFlight == 0)
    }

    @Test("configuration: defaults and overrides")
    func configuration() throws {
        let defaults = try IngestConfiguration(reader: ConfigurationReader(environment: [:]))
        #expect(defaults.metricsPort == 9096)
        #expect(defaults.supplierURL == "ws://127.0.0.1:8081/ws")
        #expect(defaults.kafkaBrokers == "127.0.0.1:9092")
        #expect(defaults.oddsTopic == "odds_updates" && defaults.deadLetterTopic == "odds_updates_dlq")
        let configured = try IngestConfiguration(reader: ConfigurationReader(
            environment: ["KAFKA_BROKERS": "a:1, b:2", "SUPPLIER_WS_URL": "ws://feed:9/ws"],
            overrides: ["KAFKA_TOPIC_ODDS": "odds_test", "INGEST_MAX_IN_FLIGHT": "50"]))
        #expect(configured.kafkaBrokers == "a:1,b:2")
        #expect(configured.supplierURL == "ws://feed:9/ws")
        #expect(configured.oddsTopic == "odds_test")
        #expect(configured.maxInFlight == 50)
    }

    @Test("configuration: a bad value is one clear error naming the key", arguments: [
        ("KAFKA_BROKERS", "not a broker list", "KAFKA_BROKERS must be a comma-separated list of host:port"),
        ("KAFKA_BROKERS", "host:99999", "KAFKA_BROKERS must be a comma-separated list of host:port"),
        ("SUPPLIER_WS_URL", "http://127.0.0.1:8081/ws", "SUPPLIER_WS_URL must be a ws/wss URL"),
        ("KAFKA_TOPIC_ODDS", "odds updates", "KAFKA_TOPIC_ODDS must be 1 to 249 characters"),
        ("INGEST_MAX_IN_FLIGHT", "0", "INGEST_MAX_IN_FLIGHT must be between 1 and 1000000"),
        ("METRICS_PORT", "0", "METRICS_PORT must be between 1 and 65535"),
    ])
    func badConfiguration(key: String, value: String, message: String) {
        #expect {
            _ = try IngestConfiguration(reader: ConfigurationReader(environment: [key: value]))
        } throws: { error in
            "\(error)".contains(message) && !"\(error)".contains("\n")
        }
    }
}

@Suite("Connection turns: an abandoned connection hands nothing on (pure logic)")
struct ConnectionTurnTests {
    @Test("a body runs while the turn is open; after end() nothing runs and whileOpen says so")
    func endedTurnRefuses() async {
        let turn = ConnectionTurn()
        var ran = 0
        #expect(await turn.whileOpen { ran += 1 })
        await turn.end()
        #expect(await turn.whileOpen { ran += 1 } == false)
        #expect(ran == 1)
    }

    @Test("end() returns only after a body that was running has finished")
    func endWaitsForTheFrameInHand() async throws {
        let turn = ConnectionTurn()
        let inBody = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        let order = OrderLog()
        let handling = Task {
            _ = await turn.whileOpen {
                inBody.continuation.yield()
                for await _ in release.stream { break }
                order.append("frame handled")
            }
        }
        for await _ in inBody.stream { break }
        let ending = Task {
            await turn.end()
            order.append("turn ended")
        }
        // end() is parked on the running body: give it every chance to return early.
        for _ in 0..<100 { await Task.yield() }
        #expect(order.entries.isEmpty, "end() returned while a frame was being handled")
        release.continuation.yield()
        await handling.value
        await ending.value
        #expect(order.entries == ["frame handled", "turn ended"])
        #expect(await turn.whileOpen {} == false)
    }
}

/// What happened, in order, across tasks.
private final class OrderLog: Sendable {
    private let log = Mutex<[String]>([])
    func append(_ entry: String) { log.withLock { $0.append(entry) } }
    var entries: [String] { log.withLock { $0 } }
}
