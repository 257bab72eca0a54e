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

    static func ingestMetrics(_ endpoints: FeedEndpoints) async throws -> String {
        try await HTTP.get("\(endpoints.ingestURL)/metrics").body
    }

    static func supplierMetrics(_ endpoints: FeedEndpoints) async throws -> String {
        try await HTTP.get("\(endpoints.supplierMetricsURL)/metrics").body
    }

    /// received / published (odds topic) / dead-lettered counters of ingest, and the seq of the
    /// last stream frame it read.
    struct IngestCounters: Equatable, CustomStringConvertible {
        let received: Int
        let published: Int
        let deadLettered: Int
        var feedSeq: Int = 0
        var acknowledged: Int { published + deadLettered }
        var description: String { "received \(received), published \(published), dead-lettered \(deadLettered), last seq read \(feedSeq)" }
    }

    static func ingestCounters(_ endpoints: FeedEndpoints) async throws -> IngestCounters {
        let text = try await ingestMetrics(endpoints)
        return IngestCounters(
            received: Int(MetricsText.value("odds_ingest_received_total", in: text)),
            published: Int(MetricsText.value("odds_ingest_published_total", in: text)),
            deadLettered: Int(MetricsText.sum(prefix: "odds_dlq_total{", in: text)),
            feedSeq: Int(MetricsText.value("odds_ingest_feed_seq", in: text)))
    }

    /// Stream frames the supplier has emitted (= the seq of its latest frame).
    static func supplierEmitted(_ endpoints: FeedEndpoints) async throws -> Int {
        Int(MetricsText.sum(prefix: "odds_supplier_frames_emitted_total{", in: try await supplierMetrics(endpoints)))
    }

    /// Waits until this ingest process has read the stream through `seq` (its last frame) and
    /// Kafka acknowledged every frame it read.
    @discardableResult
    static func waitForIngest(_ endpoints: FeedEndpoints, throughSeq seq: UInt64, timeout: Duration = .seconds(60)) async throws -> IngestCounters {
        var last = IngestCounters(received: -1, published: -1, deadLettered: -1)
        let done = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(100)) {
            last = try await ingestCounters(endpoints)
            return last.feedSeq == Int(seq) && last.acknowledged == last.received
        }
        try #require(done, "ingest did not read through seq \(seq) with everything acknowledged within \(timeout): \(last)")
        return last
    }

    /// Everything in the odds topic and the DLQ, read until at least the given counts arrived and
    /// then a quiet second passed (so extras would be seen).
    static func consume(brokers: String, odds: Int, deadLetters: Int) async throws -> (odds: [KafkaConsumerMessage], deadLetters: [KafkaConsumerMessage]) {
        let ordered = try await KafkaTopicReader.readAll(
            brokers: brokers, topics: [Topics.oddsUpdates, Topics.oddsUpdatesDeadLetter],
            expected: [Topics.oddsUpdates: odds, Topics.oddsUpdatesDeadLetter: deadLetters])
        return (ordered.filter { $0.topic == Topics.oddsUpdates }, ordered.filter { $0.topic == Topics.oddsUpdatesDeadLetter })
    }

    /// Both topics whole, with their feed headers read.
    static func readTopics(brokers: String, odds: Int, deadLetters: Int) async throws -> FeedTopics {
        let topics = try await consume(brokers: brokers, odds: odds, deadLetters: deadLetters)
        return FeedTopics(odds: topics.odds.map(FeedMessage.init), deadLetters: topics.deadLetters.map(FeedMessage.init))
    }

    /// The journal of a supplier that has stopped, and Kafka's topics once ingest has read all
    /// of it, checked for well-formed feed headers and for nothing that is not the journal's.
    static func journalAndTopics(_ journalPath: String, _ endpoints: FeedEndpoints, brokers: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> (FeedJournal, FeedTopics) {
        let journal = try FeedJournal(path: journalPath)
        try await waitForIngest(endpoints, throughSeq: journal.lastSeq)
        let topics = try await readTopics(brokers: brokers, odds: journal.valid.count + journal.markets, deadLetters: journal.invalid.count)
        #expect(FeedChecks.expectHeaders(topics, sourceLocation: sourceLocation) == 0, sourceLocation: sourceLocation)
        FeedChecks.expectStreamMessagesInJournal(topics, journals: [journal], sourceLocation: sourceLocation)
        return (journal, topics)
    }

    static func eventId(of frame: String) throws -> String {
        try OddsUpdateValidator.validate(frame).get().eventId
    }

    /// The greatest `feed-resume-after` claim in the newest `perPartition` messages of both
    /// topics (what a starting ingest should resume after), read by the test itself.
    static func greatestClaimInKafka(brokers: String, perPartition: Int = 256) async throws -> FeedPosition? {
        var logger = Logger(label: "test.kafka-tail")
        logger.logLevel = .warning
        let messages = try await KafkaTail.lastMessages(brokers: brokers, topics: [Topics.oddsUpdates, Topics.oddsUpdatesDeadLetter],
                                                        perPartition: perPartition, timeout: .seconds(20), logger: logger)
        return messages.compactMap { FeedMessage($0).resumeAfter }.max()
    }

    /// Values of `key=` in the log lines of `output` that contain `message` (text log format:
    /// `key=value` metadata before the message).
    static func logValues(_ key: String, onLinesWith message: String, in output: String) -> [String] {
        output.split(separator: "\n").filter { $0.contains(message) }.compactMap { line in
            guard let range = line.range(of: " \(key)=") ?? line.range(of: ": \(key)=") else { return nil }
            return String(line[range.upperBound...].prefix { $0 != " " })
        }
    }
}

/// A deterministic generator for a test's random choices (SplitMix64): the same seed gives the
/// same kill moments on every run.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - The supplier's journal

/// One supplier run's journal (`SUPPLIER_JOURNAL`): every market's initial state, then every
/// stream frame by seq.
struct FeedJournal {
    static let validKinds: Set<String> = ["valid", "duplicate", "out_of_order"]
    static let invalidKinds: Set<String> = ["malformed", "invalid"]

    let epoch: UInt64
    /// Kind `initial`, seq 0: one per market, the state before the first stream frame.
    let initial: [JournalEntry]
    /// Stream frames; `stream[n - 1]` has seq n.
    let stream: [JournalEntry]

    /// - Parameter truncatedTail: the supplier was killed; its last line may be cut off (it is
    ///   dropped) and its last lines may be missing.
    init(path: String, truncatedTail: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let entries: [JournalEntry]
        if truncatedTail {
            entries = try Self.readComplete(path)
        } else {
            entries = try JournalEntry.read(path)
        }
        initial = entries.filter { !$0.isStreamFrame }
        stream = entries.filter(\.isStreamFrame)
        epoch = entries.first?.epoch ?? 0
        try #require(!initial.isEmpty, "the journal \(path) has no initial lines", sourceLocation: sourceLocation)
        #expect(initial.allSatisfy { $0.seq == 0 }, sourceLocation: sourceLocation)
        #expect(Set(entries.map(\.epoch)) == [epoch], "one epoch per journal", sourceLocation: sourceLocation)
        let gapFree = stream.enumerated().allSatisfy { $0.element.seq == $0.offset + 1 }
        #expect(gapFree, "journal stream seqs are 1, 2, 3, …", sourceLocation: sourceLocation)
    }

    /// The complete lines of a journal whose writer was killed (a last partial line is dropped).
    private static func readComplete(_ path: String) throws -> [JournalEntry] {
        var text = try String(contentsOfFile: path, encoding: .utf8)
        if let lastNewline = text.lastIndex(of: "\n") {
            text = String(text[...lastNewline])
        } else {
            text = ""
        }
        let complete = FileManager.default.temporaryDirectory.appendingPathComponent("journal-complete-\(UUID().uuidString).jsonl")
        try text.write(to: complete, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: complete) }
        return try JournalEntry.read(complete.path)
    }

    var markets: Int { initial.count }
    var lastSeq: UInt64 { UInt64(stream.count) }
    var valid: [JournalEntry] { stream.filter { Self.validKinds.contains($0.kind) } }
    var invalid: [JournalEntry] { stream.filter { Self.invalidKinds.contains($0.kind) } }

    func entry(at seq: UInt64) -> JournalEntry? {
        seq >= 1 && seq <= lastSeq ? stream[Int(seq) - 1] : nil
    }

    /// Every market's state as of stream position `seq`: its latest `valid` frame at or before
    /// it, or its initial state (duplicates and out-of-order frames re-send older texts and do
    /// not change the state).
    func state(at seq: UInt64) throws -> [MarketKey: String] {
        var state: [MarketKey: String] = [:]
        for entry in initial { state[try Self.marketKey(of: entry.frame)] = entry.frame }
        for entry in stream.prefix(Int(min(seq, lastSeq))) where entry.kind == "valid" {
            state[try Self.marketKey(of: entry.frame)] = entry.frame
        }
        return state
    }

    static func marketKey(of frame: String) throws -> MarketKey {
        try OddsUpdateValidator.validate(frame).get().marketKey
    }
}

// MARK: - What the topics hold

/// A message of odds_updates or odds_updates_dlq with its feed headers read.
struct FeedMessage: Sendable {
    let topic: String
    let partition: Int32
    let offset: Int64
    let key: String?
    let value: [UInt8]
    /// `feed-epoch` + `feed-seq`: a stream frame.
    let position: FeedPosition?
    /// `feed-epoch` + `feed-snapshot`: one market of the snapshot taken at this position.
    let snapshotPosition: FeedPosition?
    /// `feed-resume-after`.
    let resumeAfter: FeedPosition?
    let error: String?
    let source: String?
    /// Which feed headers are present (whether or not readable).
    let hasEpoch: Bool
    let hasSeq: Bool
    let hasSnapshot: Bool
    /// Feed headers present but not decimal text (always a failure).
    let unreadableHeaders: [String]

    init(_ message: KafkaConsumerMessage) {
        topic = message.topic
        partition = message.partition
        offset = message.offset
        key = message.keyString
        value = message.value
        func text(_ name: String) -> String? { message.headers.first(named: name).map { String(decoding: $0, as: UTF8.self) } }
        var unreadable: [String] = []
        func decimal(_ name: String) -> UInt64? {
            guard let value = text(name) else { return nil }
            guard let number = UInt64(value) else {
                unreadable.append("\(name)=\(value)")
                return nil
            }
            return number
        }
        let epoch = decimal(FeedHeaders.epoch)
        let seq = decimal(FeedHeaders.seq)
        let snapshot = decimal(FeedHeaders.snapshot)
        position = epoch.flatMap { epoch in seq.map { FeedPosition(epoch: epoch, seq: $0) } }
        snapshotPosition = epoch.flatMap { epoch in snapshot.map { FeedPosition(epoch: epoch, seq: $0) } }
        if let claim = text(FeedHeaders.resumeAfter) {
            resumeAfter = FeedPosition(text: claim)
            if resumeAfter == nil { unreadable.append("\(FeedHeaders.resumeAfter)=\(claim)") }
        } else {
            resumeAfter = nil
        }
        error = text(DeadLetterHeaders.error)
        source = text(DeadLetterHeaders.source)
        hasEpoch = epoch != nil
        hasSeq = seq != nil
        hasSnapshot = snapshot != nil
        unreadableHeaders = unreadable
    }

    var text: String { String(decoding: value, as: UTF8.self) }
    var isDeadLetter: Bool { topic == Topics.oddsUpdatesDeadLetter }
    var update: OddsUpdate? { try? OddsUpdateValidator.validate(value).get() }
    var place: String { "\(topic)[\(partition)]@\(offset)" }
}

/// Both topics, read whole.
struct FeedTopics {
    let odds: [FeedMessage]
    let deadLetters: [FeedMessage]
    var all: [FeedMessage] { odds + deadLetters }
    /// Messages of stream frames, both topics.
    var stream: [FeedMessage] { all.filter { $0.position != nil } }
    var snapshotMessages: [FeedMessage] { odds.filter { $0.snapshotPosition != nil } }

    /// How many messages carry each stream position.
    var copies: [FeedPosition: Int] {
        var copies: [FeedPosition: Int] = [:]
        for message in all { if let position = message.position { copies[position, default: 0] += 1 } }
        return copies
    }

    /// Positions of the snapshots in the odds topic, oldest first.
    var snapshotPositions: [FeedPosition] { Set(snapshotMessages.compactMap(\.snapshotPosition)).sorted() }

    func snapshot(at position: FeedPosition) -> [FeedMessage] {
        snapshotMessages.filter { $0.snapshotPosition == position }
    }
}

/// Collects the failures of one check and records them as one issue (count and first examples),
/// instead of thousands.
struct Problems {
    let check: String
    private(set) var count = 0
    private var examples: [String] = []

    init(_ check: String) { self.check = check }

    mutating func add(_ problem: @autoclosure () -> String) {
        count += 1
        if examples.count < 5 { examples.append(problem()) }
    }

    func record(sourceLocation: SourceLocation = #_sourceLocation) {
        guard count > 0 else { return }
        Issue.record("\(check): \(count) problem(s), e.g.\n- \(examples.joined(separator: "\n- "))", sourceLocation: sourceLocation)
    }
}

enum FeedChecks {
    /// Where two texts first differ, with a little context: "…published… / …journaled…".
    static func difference(_ actual: String, _ expected: String) -> String {
        let a = Array(actual.utf8), e = Array(expected.utf8)
        let first = zip(a, e).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, e.count)
        func excerpt(_ bytes: [UInt8]) -> String {
            let start = max(0, first - 30)
            return "…" + String(decoding: bytes[start..<min(bytes.count, first + 50)], as: UTF8.self) + "…"
        }
        return "at byte \(first): \(excerpt(a)) / journal \(excerpt(e))"
    }

    /// Header shapes: every odds message carries `feed-epoch` and exactly one of `feed-seq` /
    /// `feed-snapshot`, is keyed by its event_id, one partition per event; every DLQ message
    /// carries a stream position (or, for a frame whose envelope could not be read, no feed
    /// header and an `invalid_feed_frame` error). Returns the number of such unreadable frames.
    @discardableResult
    static func expectHeaders(_ topics: FeedTopics, sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        var problems = Problems("message headers")
        var partitions: [String: Int32] = [:]
        var unreadableFrames = 0
        for message in topics.all {
            if !message.unreadableHeaders.isEmpty { problems.add("\(message.place): unreadable headers \(message.unreadableHeaders)") }
            if message.isDeadLetter {
                if message.source != "odds-ingest" { problems.add("\(message.place): DLQ source \(message.source ?? "none")") }
                if !message.hasEpoch && !message.hasSeq && !message.hasSnapshot && message.resumeAfter == nil {
                    unreadableFrames += 1
                    if !(message.error ?? "").hasPrefix("invalid_feed_frame") {
                        problems.add("\(message.place): a DLQ message without feed headers has error \(message.error ?? "none")")
                    }
                } else if message.position == nil || message.hasSnapshot {
                    problems.add("\(message.place): a DLQ message from a readable frame must carry feed-epoch and feed-seq only")
                }
                continue
            }
            guard message.hasEpoch, message.hasSeq != message.hasSnapshot else {
                problems.add("\(message.place): odds message needs feed-epoch and exactly one of feed-seq / feed-snapshot (epoch \(message.hasEpoch), seq \(message.hasSeq), snapshot \(message.hasSnapshot))")
                continue
            }
            guard let update = message.update else {
                problems.add("\(message.place): invalid OddsUpdate in odds_updates: \(message.text.prefix(120))")
                continue
            }
            if message.key != update.eventId { problems.add("\(message.place): key \(message.key ?? "none") for event \(update.eventId)") }
            if let known = partitions[update.eventId], known != message.partition {
                problems.add("event \(update.eventId) in partitions \(known) and \(message.partition)")
            }
            partitions[update.eventId] = message.partition
        }
        problems.record(sourceLocation: sourceLocation)
        return unreadableFrames
    }

    /// Every stream message is a frame of the journal of its epoch: the journal has that
    /// position, the bytes are identical, valid frames are in odds_updates and invalid ones in the
    /// DLQ with the journaled reason. Positions above the journal's end are accepted (and
    /// counted) only for epochs in `unjournaledTail` (a killed supplier's last, unflushed lines).
    @discardableResult
    static func expectStreamMessagesInJournal(_ topics: FeedTopics, journals: [FeedJournal], unjournaledTail: Set<UInt64> = [],
                                              sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        var problems = Problems("stream messages against the journal")
        let byEpoch = Dictionary(journals.map { ($0.epoch, $0) }) { first, _ in first }
        var unverified = 0
        for message in topics.all {
            guard let position = message.position else { continue }
            guard let journal = byEpoch[position.epoch] else {
                problems.add("\(message.place): position \(position) of an epoch no journal has")
                continue
            }
            guard let entry = journal.entry(at: position.seq) else {
                if unjournaledTail.contains(position.epoch) && position.seq > journal.lastSeq {
                    unverified += 1
                } else {
                    problems.add("\(message.place): position \(position) is not in the journal (last seq \(journal.lastSeq))")
                }
                continue
            }
            if message.value != Array(entry.frame.utf8) {
                problems.add("\(message.place) at \(position): bytes differ from the journal's: \(difference(message.text, entry.frame))")
            }
            if FeedJournal.validKinds.contains(entry.kind) {
                if message.isDeadLetter { problems.add("\(message.place): the \(entry.kind) frame \(position) was dead-lettered: \(message.error ?? "")") }
            } else if !message.isDeadLetter {
                problems.add("\(message.place): the \(entry.kind) frame \(position) was published to odds_updates")
            } else if !(message.error ?? "").hasPrefix(entry.reason ?? "?") {
                problems.add("\(message.place): DLQ error \(message.error ?? "none") for a frame journaled as \(entry.reason ?? "-")")
            }
        }
        problems.record(sourceLocation: sourceLocation)
        return unverified
    }

    /// Every stream frame of `journal` after `seq` (through `last`) is in the topics: exactly
    /// once, or at least once. Returns how many of them are there more than once, and how many extra copies.
    @discardableResult
    static func expectEveryStreamFrame(of journal: FeedJournal, in topics: FeedTopics, after seq: UInt64 = 0, through last: UInt64? = nil,
                                       exactlyOnce: Bool, sourceLocation: SourceLocation = #_sourceLocation) -> (frames: Int, copies: Int) {
        var missing = Problems("journaled stream frames missing from Kafka")
        var repeated = Problems("journaled stream frames in Kafka more than once")
        let copies = topics.copies
        var duplicated = 0
        var extra = 0
        for entry in journal.stream where entry.seq > seq && UInt64(entry.seq) <= (last ?? .max) {
            let position = FeedPosition(epoch: journal.epoch, seq: UInt64(entry.seq))
            let count = copies[position] ?? 0
            if count == 0 { missing.add("\(position) (\(entry.kind)): \(entry.frame.prefix(120))") }
            if count > 1 {
                duplicated += 1
                extra += count - 1
                if exactlyOnce { repeated.add("\(position) (\(entry.kind)) \(count) times") }
            }
        }
        missing.record(sourceLocation: sourceLocation)
        repeated.record(sourceLocation: sourceLocation)
        return (duplicated, extra)
    }

    /// The snapshot taken at `position` is in odds_updates once per market, each message equal to
    /// that market's state in the journal as of the snapshot's seq. Returns its messages.
    @discardableResult
    static func expectSnapshot(at position: FeedPosition, of journal: FeedJournal, in topics: FeedTopics,
                               sourceLocation: SourceLocation = #_sourceLocation) throws -> [FeedMessage] {
        let messages = topics.snapshot(at: position)
        #expect(position.epoch == journal.epoch, "snapshot \(position) of journal epoch \(journal.epoch)", sourceLocation: sourceLocation)
        #expect(messages.count == journal.markets, "snapshot \(position): \(messages.count) messages for \(journal.markets) markets",
                sourceLocation: sourceLocation)
        let expected = try journal.state(at: position.seq)
        var problems = Problems("snapshot \(position) against the journal's state at seq \(position.seq)")
        var seen: Set<MarketKey> = []
        for message in messages {
            guard let update = message.update else {
                problems.add("\(message.place): not a valid OddsUpdate")
                continue
            }
            if !seen.insert(update.marketKey).inserted { problems.add("\(update.marketKey) twice") }
            if message.value != Array((expected[update.marketKey] ?? "").utf8) {
                problems.add("\(update.marketKey) differs from the journal's state: \(difference(message.text, expected[update.marketKey] ?? "none"))")
            }
        }
        problems.record(sourceLocation: sourceLocation)
        return messages
    }

    /// Every `feed-resume-after` claim E:N is true of the topics: they hold a complete snapshot
    /// of epoch E at some S ≤ N and every stream frame S+1…N, or every stream frame 1…N.
    static func expectClaimsHold(_ topics: FeedTopics, markets: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        var present: [UInt64: Set<UInt64>] = [:]
        for position in topics.copies.keys { present[position.epoch, default: []].insert(position.seq) }
        var snapshots: [UInt64: Set<UInt64>] = [:]
        for position in topics.snapshotPositions {
            let distinct = Set(topics.snapshot(at: position).compactMap { $0.update?.marketKey })
            if distinct.count == markets { snapshots[position.epoch, default: []].insert(position.seq) }
        }
        var claims: [UInt64: Set<UInt64>] = [:]
        for message in topics.all { if let claim = message.resumeAfter { claims[claim.epoch, default: []].insert(claim.seq) } }
        var problems = Problems("feed-resume-after claims")
        for (epoch, seqs) in claims {
            let frames = present[epoch] ?? []
            let taken = snapshots[epoch] ?? []
            // covered(s): the topics hold the feed's state through s.
            var covered = true  // s = 0: nothing to hold
            var seq: UInt64 = 0
            for claim in seqs.sorted() {
                while seq < claim {
                    seq += 1
                    covered = taken.contains(seq) || (covered && frames.contains(seq))
                }
                if !covered { problems.add("claim \(epoch):\(claim): no complete snapshot and gap-free stream frames through it") }
            }
        }
        problems.record(sourceLocation: sourceLocation)
    }

    /// Exactly-once runs: per partition, messages follow the feed's order (stream frames by
    /// position, a snapshot after the frame it was taken at and before the next one).
    static func expectFeedOrderPerPartition(_ topics: FeedTopics, sourceLocation: SourceLocation = #_sourceLocation) {
        var problems = Problems("feed order per partition")
        var last: [String: (UInt64, UInt64, String)] = [:]
        for message in topics.all {
            let order: (UInt64, UInt64)
            if let position = message.position {
                order = (position.epoch, position.seq * 2 + 1)
            } else if let position = message.snapshotPosition {
                order = (position.epoch, position.seq * 2 + 2)
            } else {
                continue
            }
            let partition = "\(message.topic)[\(message.partition)]"
            // Snapshot messages of one snapshot share their place in the order.
            if let previous = last[partition], (previous.0, previous.1) > order || ((previous.0, previous.1) == order && message.position != nil) {
                problems.add("\(message.place): \(message.position.map { "frame \($0)" } ?? "snapshot \(message.snapshotPosition!)") after \(previous.2)")
            }
            last[partition] = (order.0, order.1, message.position.map { "frame \($0)" } ?? "snapshot \(message.snapshotPosition!)")
        }
        problems.record(sourceLocation: sourceLocation)
    }

    /// Per market, the versions in odds_updates (partition order) never go down.
    static func expectVersionsNeverGoBack(_ odds: [FeedMessage], sourceLocation: SourceLocation = #_sourceLocation) {
        var problems = Problems("versions per market in odds_updates")
        var latest: [MarketKey: (Int64, String)] = [:]
        for message in odds {
            guard let update = message.update else { continue }
            let what = message.position.map { "frame \($0)" } ?? "snapshot \(message.snapshotPosition.map { "\($0)" } ?? "?")"
            if let previous = latest[update.marketKey], update.version < previous.0 {
                problems.add("\(update.marketKey): version \(update.version) (\(what), \(message.place)) after \(previous.0) (\(previous.1))")
            }
            latest[update.marketKey] = (max(update.version, latest[update.marketKey]?.0 ?? .min), what)
        }
        problems.record(sourceLocation: sourceLocation)
    }
}
