import Contracts
import Foundation
import IntegrationSupport
import Kafka
import Testing

/// supplier-simulator → odds-ingest → kafka-dev-broker, all real processes over real sockets,
/// speaking odds-feed/2. Each test starts its own broker, so stopping or pausing it touches
/// nobody else. What Kafka holds is checked against the supplier's journal by stream position
/// (the feed-epoch / feed-seq / feed-snapshot headers), never by timing.
@Suite("odds-ingest pipeline (real processes)", .serialized, .timeLimit(.minutes(5)))
struct IngestPipelineTests {
    /// How long the fault run feeds at 1,000 updates/s (30 s as the issue asks; set
    /// ODDS_FEED_TEST_SECONDS to shorten it while iterating).
    static let faultRunSeconds = Int(ProcessInfo.processInfo.environment["ODDS_FEED_TEST_SECONDS"] ?? "") ?? 30

    @Test("all faults at 1,000/s: a snapshot, then every journaled stream frame exactly once in feed order (valid ones in odds_updates, invalid ones in the DLQ), nothing else")
    func faultsEndToEnd() async throws {
        let broker = try await KafkaDevBrokerProcess()
        defer { broker.stop() }
        let endpoints = try FeedEndpoints()
        let journalPath = Pipeline.journalPath("ingest-faults")
        defer { try? FileManager.default.removeItem(atPath: journalPath) }
        let ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap)
        defer { ingest.stop(signal: SIGKILL) }
        let supplier = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "1000", "SUPPLIER_JOURNAL": journalPath, "SUPPLIER_SEED": "2026",
            "SUPPLIER_FAULT_MALFORMED": "0.03", "SUPPLIER_FAULT_INVALID": "0.03",
            "SUPPLIER_FAULT_DUPLICATE": "0.03", "SUPPLIER_FAULT_OUT_OF_ORDER": "0.03",
            "SUPPLIER_DISCONNECT_EVERY": "4",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        let ready = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) {
            try await HTTP.get("\(endpoints.ingestURL)/readyz").status == 200
        }
        #expect(ready, "ingest never became ready: \(ingest.output.suffix(2_000))")

        // The feed runs for a fixed time at whatever rate this machine reaches; every check
        // below is against what was journaled, not against the rate.
        try await Task.sleep(for: .seconds(Self.faultRunSeconds))
        let supplierMetrics = try await Pipeline.supplierMetrics(endpoints)
        let forcedDisconnects = MetricsText.value("odds_supplier_forced_disconnects_total", in: supplierMetrics)
        // A graceful stop writes what is buffered for ingest before closing, so the journal is
        // exactly what ingest read.
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
        let journal = try FeedJournal(path: journalPath)
        #expect(!journal.stream.isEmpty, "the supplier journaled nothing")
        #expect(Set(journal.stream.map(\.kind)) == ["valid", "duplicate", "out_of_order", "malformed", "invalid"])
        let counters = try await Pipeline.waitForIngest(endpoints, throughSeq: journal.lastSeq)
        // One snapshot (a market per message) and every stream frame, each read once.
        #expect(counters.received == journal.stream.count + journal.markets, "\(counters)")
        #expect(counters.published == journal.valid.count + journal.markets, "\(counters)")
        #expect(counters.deadLettered == journal.invalid.count, "\(counters)")

        let topics = try await Pipeline.readTopics(brokers: broker.bootstrap, odds: counters.published, deadLetters: counters.deadLettered)
        #expect(topics.odds.count == counters.published)
        #expect(topics.deadLetters.count == counters.deadLettered)
        #expect(FeedChecks.expectHeaders(topics) == 0, "every frame's envelope was readable: DLQ messages carry their position")
        FeedChecks.expectStreamMessagesInJournal(topics, journals: [journal])
        FeedChecks.expectEveryStreamFrame(of: journal, in: topics, exactlyOnce: true)
        // Ingest started on an empty Kafka: a snapshot first (the state when it connected),
        // then the stream in order, per partition; reconnects resumed without a second one.
        #expect(topics.snapshotPositions.count == 1, "snapshots at \(topics.snapshotPositions)")
        if let snapshot = topics.snapshotPositions.first {
            try FeedChecks.expectSnapshot(at: snapshot, of: journal, in: topics)
        }
        FeedChecks.expectFeedOrderPerPartition(topics)
        FeedChecks.expectClaimsHold(topics, markets: journal.markets)

        // Scheduled disconnects happened, and ingest resumed after the last frame it read each time.
        let metrics = try await Pipeline.ingestMetrics(endpoints)
        let attempts = MetricsText.value("odds_ingest_connect_attempts_total", in: metrics)
        #expect(forcedDisconnects >= 1, "no scheduled disconnect happened in \(Self.faultRunSeconds) s")
        #expect(attempts >= forcedDisconnects + 1)
        #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="snapshot"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_snapshots_total{reason="requested"}"#, in: metrics) == 1)
        #expect(MetricsText.sum(prefix: "odds_ingest_snapshots_total{", in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: metrics) >= forcedDisconnects)
        #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="live"}"#, in: metrics) == 0)
        #expect(MetricsText.value("odds_ingest_snapshot_frames_total", in: metrics) == Double(journal.markets))
        #expect(MetricsText.value("odds_ingest_frames_replayed_total", in: metrics)
                == MetricsText.value("odds_supplier_frames_replayed_total", in: supplierMetrics))
        // Nothing in Kafka at start: the first attempts ask for a snapshot, every later one
        // resumes after the last frame read.
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: metrics) == 0)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="none"}"#, in: metrics) >= 1)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="memory"}"#, in: metrics) >= forcedDisconnects)
        // One source per attempt (a scrape may fall between an attempt's two counters).
        let sources = MetricsText.sum(prefix: "odds_ingest_resume_source_total{", in: metrics)
        #expect(sources <= attempts && sources >= attempts - 1, "\(sources) resume sources for \(attempts) attempts")
        #expect(MetricsText.value("odds_ingest_feed_protocol_errors_total", in: metrics) == 0)
        #expect(MetricsText.value(#"odds_invalid_total{reason="malformed_json"}"#, in: metrics) > 0)
        #expect(MetricsText.value(#"odds_invalid_total{reason="invalid_feed_frame"}"#, in: metrics) == 0)
        #expect(MetricsText.value("odds_ingest_publish_latency_seconds_count", in: metrics) == Double(journal.stream.count + journal.markets))
        #expect(metrics.contains("odds_ingest_feed_lag_seconds"))

        // Graceful shutdown: stop reading, everything acknowledged, producer flushed, exit 0.
        #expect(await ingest.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
        #expect(ingest.output.contains("every frame read from the supplier is acknowledged by Kafka"))
    }

    @Test("supplier kill -9 and restart: new epoch, snapshot; ingest resumes after its last position, nothing published twice, versions never go back")
    func supplierRestart() async throws {
        let broker = try await KafkaDevBrokerProcess()
        defer { broker.stop() }
        let endpoints = try FeedEndpoints()
        let firstJournalPath = Pipeline.journalPath("ingest-restart-1")
        let secondJournalPath = Pipeline.journalPath("ingest-restart-2")
        defer {
            try? FileManager.default.removeItem(atPath: firstJournalPath)
            try? FileManager.default.removeItem(atPath: secondJournalPath)
        }
        let ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap)
        defer { ingest.stop(signal: SIGKILL) }
        // Invalid frames only: duplicates and out-of-order frames re-send older versions by
        // design, and this test checks that versions never go back.
        let first = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "500", "SUPPLIER_JOURNAL": firstJournalPath, "SUPPLIER_FAULT_INVALID": "0.02",
        ])
        defer { first.stop(signal: SIGKILL) }
        let flowing = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            try await Pipeline.ingestCounters(endpoints).published > 1_000
        }
        #expect(flowing, "ingest publishes the first supplier's feed: \(ingest.output.suffix(1_500))")
        #expect(await first.stopAsync(signal: SIGKILL) == 128 + SIGKILL)

        // The connection is gone; every frame read before the crash is acknowledged.
        let notReady = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) {
            try await HTTP.get("\(endpoints.ingestURL)/readyz").body.contains(#""supplier":false"#)
        }
        #expect(notReady, "readiness reports the supplier down")
        var afterCrash = try await Pipeline.ingestCounters(endpoints)
        let settled = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            afterCrash = try await Pipeline.ingestCounters(endpoints)
            return afterCrash.acknowledged == afterCrash.received
        }
        #expect(settled, "\(afterCrash)")

        let second = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "500", "SUPPLIER_JOURNAL": secondJournalPath, "SUPPLIER_FAULT_INVALID": "0.02",
        ])
        defer { second.stop(signal: SIGKILL) }
        let resumed = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            try await Pipeline.ingestCounters(endpoints).received > afterCrash.received + 1_000
        }
        #expect(resumed, "ingest reconnected to the restarted supplier: \(ingest.output.suffix(1_500))")
        let secondMetrics = try await Pipeline.supplierMetrics(endpoints)
        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="unknown_epoch"}"#, in: secondMetrics) == 1)
        #expect(await second.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)

        let firstJournal = try FeedJournal(path: firstJournalPath, truncatedTail: true)
        let secondJournal = try FeedJournal(path: secondJournalPath)
        #expect(secondJournal.epoch > firstJournal.epoch, "a restarted supplier has a larger epoch")
        try await Pipeline.waitForIngest(endpoints, throughSeq: secondJournal.lastSeq)
        let topics = try await Pipeline.readTopics(brokers: broker.bootstrap,
                                                   odds: secondJournal.valid.count + 2 * secondJournal.markets,
                                                   deadLetters: secondJournal.invalid.count)
        #expect(FeedChecks.expectHeaders(topics) == 0)
        // The killed supplier's journal may miss its last lines (written every 100 ms).
        let unjournaled = FeedChecks.expectStreamMessagesInJournal(topics, journals: [firstJournal, secondJournal],
                                                                   unjournaledTail: [firstJournal.epoch])

        // Nothing published twice: every position once, and per partition in feed order.
        let copies = topics.copies
        #expect(copies.values.allSatisfy { $0 == 1 }, "\(copies.values.filter { $0 > 1 }.count) positions published more than once")
        FeedChecks.expectFeedOrderPerPartition(topics)

        // The crashed supplier: a gap-free prefix of its stream, 1…K; the rest was still in its
        // buffers when it died.
        let firstSeqs = copies.keys.filter { $0.epoch == firstJournal.epoch }.map(\.seq)
        let readBeforeCrash = firstSeqs.max() ?? 0
        #expect(firstSeqs.count == Int(readBeforeCrash), "epoch \(firstJournal.epoch): \(firstSeqs.count) positions for seqs 1…\(readBeforeCrash)")
        FeedChecks.expectEveryStreamFrame(of: firstJournal, in: topics, through: readBeforeCrash, exactlyOnce: true)
        // The restarted supplier: everything, exactly once.
        FeedChecks.expectEveryStreamFrame(of: secondJournal, in: topics, exactlyOnce: true)
        print("supplier restart: epoch \(firstJournal.epoch) read through seq \(readBeforeCrash) (journal has \(firstJournal.lastSeq), \(unjournaled) read but not journaled); epoch \(secondJournal.epoch): \(secondJournal.lastSeq) frames")

        // Two snapshots: the first start (empty Kafka), and the new epoch's, each equal to its
        // supplier's state at the snapshot's seq (the new supplier's initial state when ingest
        // was its first client).
        let snapshots = topics.snapshotPositions
        #expect(snapshots.count == 2, "snapshots at \(snapshots)")
        #expect(snapshots.first?.epoch == firstJournal.epoch)
        #expect(snapshots.last?.epoch == secondJournal.epoch)
        if snapshots.count == 2 {
            try FeedChecks.expectSnapshot(at: snapshots[0], of: firstJournal, in: topics)
            try FeedChecks.expectSnapshot(at: snapshots[1], of: secondJournal, in: topics)
        }
        FeedChecks.expectVersionsNeverGoBack(topics.odds)
        FeedChecks.expectClaimsHold(topics, markets: secondJournal.markets)

        // Ingest asked the new supplier to resume after the last frame it had read (old epoch)
        // and got a snapshot because that epoch is unknown there.
        let output = ingest.output
        let asked = Pipeline.logValues("asked_after", onLinesWith: "supplier answered", in: output)
        let reasons = Pipeline.logValues("reason", onLinesWith: "supplier answered", in: output)
        #expect(asked.contains("\(firstJournal.epoch):\(readBeforeCrash)"), "asked after \(asked)")
        #expect(reasons.contains("unknown_epoch"), "reasons \(reasons)")
        let metrics = try await Pipeline.ingestMetrics(endpoints)
        #expect(MetricsText.value(#"odds_ingest_snapshots_total{reason="requested"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_snapshots_total{reason="unknown_epoch"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="snapshot"}"#, in: metrics) == 2)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="memory"}"#, in: metrics) >= 1)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: metrics) == 0)
        #expect(MetricsText.value("odds_ingest_feed_protocol_errors_total", in: metrics) == 0)
        #expect(MetricsText.value("odds_ingest_connect_attempts_total", in: metrics) >= 2)
        #expect(output.contains("reconnecting to supplier after backoff"))
    }

    @Test("supplier frozen (SIGSTOP) past several handshake deadlines: the abandoned connections, answered once it thaws, publish nothing; every frame exactly once")
    func frozenSupplierAbandonedHandshakes() async throws {
        let broker = try await KafkaDevBrokerProcess()
        defer { broker.stop() }
        let endpoints = try FeedEndpoints()
        let journalPath = Pipeline.journalPath("ingest-frozen")
        defer { try? FileManager.default.removeItem(atPath: journalPath) }
        let supplier = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "500", "SUPPLIER_JOURNAL": journalPath, "SUPPLIER_SEED": "1414",
        ])
        defer {
            supplier.signal(SIGCONT)
            supplier.stop(signal: SIGKILL)
        }
        // Short deadlines so that a few seconds of freeze abandon several connections: the
        // frozen supplier's kernel accepts each one and queues its upgrade request, and every
        // queued connection is answered, with a replay, the moment the supplier thaws.
        let ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap, environment: [
            "INGEST_FEED_SILENT_MS": "1000", "INGEST_HANDSHAKE_TIMEOUT_MS": "1000",
            "INGEST_RECONNECT_MIN_MS": "100", "INGEST_RECONNECT_MAX_MS": "300",
        ])
        defer { ingest.stop(signal: SIGKILL) }
        let flowing = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            try await Pipeline.ingestCounters(endpoints).published > 500
        }
        try #require(flowing, "ingest publishes the feed before the freeze: \(ingest.output.suffix(1_500))")

        supplier.signal(SIGSTOP)
        let handshakeTimeouts = { ingest.output.components(separatedBy: "waiting for the supplier's WebSocket handshake").count - 1 }
        let abandoned = try await TestInfrastructure.waitUntil(timeout: .seconds(60)) { handshakeTimeouts() >= 3 }
        #expect(abandoned, "three connections abandoned at the handshake deadline while the supplier is frozen: \(ingest.output.suffix(1_500))")
        let beforeThaw = try await Pipeline.ingestCounters(endpoints)
        supplier.signal(SIGCONT)
        let resumed = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            try await Pipeline.ingestCounters(endpoints).received > beforeThaw.received + 1_000
        }
        #expect(resumed, "ingest reads the thawed supplier's feed: \(ingest.output.suffix(1_500))")
        let supplierMetrics = try await Pipeline.supplierMetrics(endpoints)
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)

        let (journal, topics) = try await Pipeline.journalAndTopics(journalPath, endpoints, brokers: broker.bootstrap)
        let copies = topics.copies
        #expect(copies.values.allSatisfy { $0 == 1 }, "\(copies.values.filter { $0 > 1 }.count) positions published more than once")
        FeedChecks.expectEveryStreamFrame(of: journal, in: topics, exactlyOnce: true)
        FeedChecks.expectFeedOrderPerPartition(topics)
        #expect(topics.snapshotPositions.count == 1, "snapshots at \(topics.snapshotPositions)")

        let metrics = try await Pipeline.ingestMetrics(endpoints)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="memory"}"#, in: metrics) >= 3)
        // The library answers an abandoned connection's handler once the upgrade completes: each
        // such handler must close unread.
        let lateAnswers = ingest.output.components(separatedBy: "an abandoned connection to the supplier was answered late").count - 1
        print("supplier frozen: \(handshakeTimeouts()) connections abandoned at the handshake, \(lateAnswers) answered late and closed unread; the supplier answered \(Int(MetricsText.sum(prefix: "odds_supplier_feed_starts_total{", in: supplierMetrics))) feed starts; \(journal.stream.count) stream frames, each once")
    }

    @Test("kill -9 of odds-ingest, restarted: resumes after the claim found in Kafka; nothing missing")
    func ingestKilledAndRestarted() async throws {
        let broker = try await KafkaDevBrokerProcess()
        defer { broker.stop() }
        let endpoints = try FeedEndpoints()
        let journalPath = Pipeline.journalPath("ingest-kill")
        defer { try? FileManager.default.removeItem(atPath: journalPath) }
        let supplier = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "2000", "SUPPLIER_JOURNAL": journalPath, "SUPPLIER_SEED": "4242",
            "SUPPLIER_FAULT_MALFORMED": "0.02", "SUPPLIER_FAULT_INVALID": "0.02",
            "SUPPLIER_FAULT_DUPLICATE": "0.02", "SUPPLIER_FAULT_OUT_OF_ORDER": "0.02",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        var ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap)
        defer { ingest.stop(signal: SIGKILL) }
        var startedAt = ContinuousClock.now
        let streaming = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            try await Pipeline.ingestCounters(endpoints).feedSeq > 0
        }
        try #require(streaming, "the first ingest reads the feed: \(ingest.output.suffix(1_500))")

        // Kill moments and pauses come from a seeded generator: the same on every run.
        var random = SeededRandom(seed: 0x0DD5_2026)
        var askedAfter: [FeedPosition] = []
        for round in 1...6 {
            let runFor = Duration.milliseconds(Int.random(in: 1_000...4_000, using: &random))
            let pause = Duration.milliseconds(Int.random(in: 100...600, using: &random))
            try await Task.sleep(until: startedAt + runFor)
            #expect(await ingest.stopAsync(signal: SIGKILL) == 128 + SIGKILL)
            try await Task.sleep(for: pause)
            // What a restarted ingest must resume after: the greatest claim now in Kafka, read
            // by the test from more of each partition than ingest reads.
            let claim = try await Pipeline.greatestClaimInKafka(brokers: broker.bootstrap)
            try #require(claim != nil, "round \(round): Kafka holds no claim after \(runFor) of feed")

            ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap)
            startedAt = .now
            var metrics = ""
            let replaying = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
                metrics = try await Pipeline.ingestMetrics(endpoints)
                // The hello is counted, then logged: wait for both.
                return MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: metrics) >= 1
                    && ingest.output.contains("supplier answered")
            }
            let output = ingest.output
            #expect(replaying, "round \(round): the restarted ingest resumes with a replay: \(output.suffix(1_500))")
            #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: metrics) >= 1, "round \(round)")
            #expect(MetricsText.sum(prefix: "odds_ingest_snapshots_total{", in: metrics) == 0, "round \(round): no snapshot")
            #expect(Pipeline.logValues("position_from", onLinesWith: "] connecting to supplier", in: output).first == "kafka")
            let fromKafka = Pipeline.logValues("after", onLinesWith: "resuming the feed after the position Kafka is known to hold", in: output)
            let asked = Pipeline.logValues("asked_after", onLinesWith: "supplier answered", in: output).first.flatMap { FeedPosition(text: $0) }
            #expect(fromKafka.count == 1 && fromKafka.first == asked?.description, "round \(round): claim \(fromKafka), asked \(String(describing: asked))")
            if let asked, let claim {
                // Kafka only grows while ingest is down: it found at least the claim the test found.
                #expect(asked >= claim, "round \(round): resumed after \(asked), Kafka held \(claim)")
                askedAfter.append(asked)
            } else {
                Issue.record("round \(round): the restarted ingest logged no resume position: \(output.suffix(1_500))")
            }
        }

        // The last ingest reads on; then the stream ends with a graceful stop (journal flushed,
        // buffered frames written).
        try await Task.sleep(until: startedAt + .milliseconds(Int.random(in: 1_000...2_000, using: &random)))
        let supplierMetrics = try await Pipeline.supplierMetrics(endpoints)
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
        // Nothing that is not the journal's: every position journaled, with the same bytes, on the
        // right topic.
        let (journal, topics) = try await Pipeline.journalAndTopics(journalPath, endpoints, brokers: broker.bootstrap)
        // Nothing missing: every valid frame in odds_updates, every invalid one in the DLQ.
        let duplicates = FeedChecks.expectEveryStreamFrame(of: journal, in: topics, exactlyOnce: false)
        // One snapshot only: the first start; every restart resumed by replay.
        #expect(topics.snapshotPositions.count == 1, "snapshots at \(topics.snapshotPositions)")
        if let snapshot = topics.snapshotPositions.first {
            try FeedChecks.expectSnapshot(at: snapshot, of: journal, in: topics)
        }
        FeedChecks.expectClaimsHold(topics, markets: journal.markets)
        let claims = Set(topics.all.compactMap(\.resumeAfter))
        #expect(askedAfter.allSatisfy { claims.contains($0) }, "every resume position is a claim Kafka holds: \(askedAfter)")
        #expect(askedAfter.count == 6)

        #expect(MetricsText.value("odds_supplier_frames_replayed_total", in: supplierMetrics) > 0)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="replay"}"#, in: supplierMetrics) >= 6)
        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="requested"}"#, in: supplierMetrics) == 1)
        #expect(MetricsText.sum(prefix: "odds_supplier_snapshots_total{", in: supplierMetrics) == 1)
        print("ingest kill -9 ×6: \(journal.stream.count) stream frames, \(duplicates.frames) published more than once (\(duplicates.copies) extra copies); resumed after \(askedAfter.map(\.description).joined(separator: ", "))")
    }

    @Test("a resume position older than the replay log takes the snapshot path")
    func resumeOlderThanReplayLog() async throws {
        let broker = try await KafkaDevBrokerProcess()
        defer { broker.stop() }
        let endpoints = try FeedEndpoints()
        let journalPath = Pipeline.journalPath("ingest-too-old")
        defer { try? FileManager.default.removeItem(atPath: journalPath) }
        let replayFrames = 200
        // Invalid frames only (no duplicates or out-of-order re-sends): versions per market then
        // only grow, which the end checks.
        let supplier = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "1000", "SUPPLIER_JOURNAL": journalPath, "SUPPLIER_SEED": "99",
            "SUPPLIER_REPLAY_FRAMES": "\(replayFrames)", "SUPPLIER_FAULT_INVALID": "0.02", "SUPPLIER_FAULT_MALFORMED": "0.01",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        var ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap)
        defer { ingest.stop(signal: SIGKILL) }
        let flowing = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            try await Pipeline.ingestCounters(endpoints).published > 500
        }
        try #require(flowing, "ingest publishes: \(ingest.output.suffix(1_500))")
        #expect(await ingest.stopAsync(signal: SIGKILL) == 128 + SIGKILL)
        let claim = try #require(try await Pipeline.greatestClaimInKafka(brokers: broker.bootstrap))

        // The supplier only advances while a client is connected: a second client keeps it
        // moving until the replay log no longer reaches back to the claim.
        let keeper = try await WSTestClient.connect("\(endpoints.feedURL)?start=live")
        let moved = try await TestInfrastructure.waitUntil(timeout: .seconds(30), interval: .milliseconds(100)) {
            try await Pipeline.supplierEmitted(endpoints) > Int(claim.seq) + 2 * replayFrames
        }
        #expect(moved, "the supplier emitted \(2 * replayFrames) frames after \(claim) for the keeper client")

        ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap)
        let resumed = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            try await Pipeline.ingestCounters(endpoints).feedSeq > 0
        }
        #expect(resumed, "the restarted ingest reads the stream again: \(ingest.output.suffix(1_500))")
        var restarted = try await Pipeline.ingestCounters(endpoints)
        let streamed = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            restarted = try await Pipeline.ingestCounters(endpoints)
            return restarted.received > 1_000
        }
        #expect(streamed, "\(restarted)")
        let supplierMetrics = try await Pipeline.supplierMetrics(endpoints)
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
        await keeper.close()
        #expect(keeper.received.first.map { $0.text.contains(#""recovery":"live""#) } == true, "the keeper asked for live frames only")

        let journal = try FeedJournal(path: journalPath)
        try await Pipeline.waitForIngest(endpoints, throughSeq: journal.lastSeq)
        let metrics = try await Pipeline.ingestMetrics(endpoints)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_snapshots_total{reason="too_old"}"#, in: metrics) == 1)
        #expect(MetricsText.sum(prefix: "odds_ingest_snapshots_total{", in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="snapshot"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: metrics) == 0)
        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="too_old"}"#, in: supplierMetrics) == 1)
        let output = ingest.output
        let asked = Pipeline.logValues("asked_after", onLinesWith: "supplier answered", in: output).first.flatMap { FeedPosition(text: $0) }
        #expect(Pipeline.logValues("reason", onLinesWith: "supplier answered", in: output).first == "too_old")
        #expect(asked.map { $0 >= claim } == true, "asked after \(String(describing: asked)), Kafka held \(claim)")

        // At least what the restarted ingest published.
        let topics = try await Pipeline.readTopics(brokers: broker.bootstrap, odds: restarted.published, deadLetters: restarted.deadLettered)
        #expect(FeedChecks.expectHeaders(topics) == 0)
        FeedChecks.expectStreamMessagesInJournal(topics, journals: [journal])
        FeedChecks.expectClaimsHold(topics, markets: journal.markets)
        // Two snapshots: the first start's, and the one that answered the too-old position.
        let snapshots = topics.snapshotPositions
        #expect(snapshots.count == 2, "snapshots at \(snapshots)")
        guard snapshots.count == 2, let asked else { return }
        let resumedAt = snapshots[1]
        #expect(resumedAt.seq > asked.seq + UInt64(replayFrames), "snapshot at \(resumedAt), asked after \(asked)")
        try FeedChecks.expectSnapshot(at: snapshots[0], of: journal, in: topics)
        let snapshot = try FeedChecks.expectSnapshot(at: resumedAt, of: journal, in: topics)
        // Followed by every stream frame after it, once. Before it: every frame through Kafka's
        // claim, once. Between the claim and the last frame the killed ingest got into Kafka there
        // may be gaps (a producer killed mid-stream has written some partitions and not others;
        // Kafka orders per partition only), never a second copy; the snapshot covers them.
        FeedChecks.expectEveryStreamFrame(of: journal, in: topics, after: resumedAt.seq, exactlyOnce: true)
        let copiesBefore = topics.copies.filter { $0.key.seq < resumedAt.seq }
        let readBeforeKill = copiesBefore.keys.map(\.seq).max() ?? 0
        #expect(readBeforeKill >= asked.seq)
        FeedChecks.expectEveryStreamFrame(of: journal, in: topics, through: asked.seq, exactlyOnce: true)
        #expect(copiesBefore.filter { $0.value > 1 }.isEmpty, "frames before the snapshot in Kafka twice: \(copiesBefore.filter { $0.value > 1 }.keys.sorted().prefix(5))")
        let gaps = stride(from: asked.seq + 1, through: readBeforeKill, by: 1).filter { copiesBefore[FeedPosition(epoch: resumedAt.epoch, seq: $0)] == nil }.count
        FeedChecks.expectFeedOrderPerPartition(topics)
        print("too old: killed ingest got through \(readBeforeKill) into Kafka (\(gaps) gaps after the claim), resumed from Kafka's claim \(asked), snapshot at \(resumedAt) (\(resumedAt.seq - readBeforeKill) frames covered by it), stream through \(journal.lastSeq)")

        // Nothing inconsistent: per market, no version after the snapshot is below the snapshot's.
        var problems = Problems("versions after the snapshot at \(resumedAt)")
        for market in snapshot {
            guard let base = market.update else { continue }
            for later in topics.odds where later.partition == market.partition && later.offset > market.offset {
                if let update = later.update, update.marketKey == base.marketKey, update.version < base.version {
                    problems.add("\(base.marketKey): version \(update.version) at \(later.place) below the snapshot's \(base.version)")
                }
            }
        }
        problems.record()
        FeedChecks.expectVersionsNeverGoBack(topics.odds)
    }

    @Test("broker unresponsive for 10 s: ingest stops reading, readiness drops, and after it returns nothing is missing")
    func brokerPause() async throws {
        let broker = try await KafkaDevBrokerProcess()
        defer {
            kill(broker.process.pid, SIGCONT)
            broker.stop()
        }
        let endpoints = try FeedEndpoints()
        let journalPath = Pipeline.journalPath("ingest-broker-pause")
        defer { try? FileManager.default.removeItem(atPath: journalPath) }
        let window = 300
        let ingest = try await Pipeline.startIngest(endpoints, brokers: broker.bootstrap,
                                                    environment: ["INGEST_MAX_IN_FLIGHT": "\(window)"])
        defer { ingest.stop(signal: SIGKILL) }
        let supplier = try await Pipeline.startSupplier(endpoints, environment: [
            "SUPPLIER_RATE": "500", "SUPPLIER_JOURNAL": journalPath,
            "SUPPLIER_FAULT_INVALID": "0.02", "SUPPLIER_FAULT_DUPLICATE": "0.02",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        let flowing = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) {
            try await Pipeline.ingestCounters(endpoints).published > 1_000
        }
        #expect(flowing)

        // SIGSTOP: the broker keeps its in-memory data but answers nothing (a hung broker).
        #expect(kill(broker.process.pid, SIGSTOP) == 0)
        let pausedAt = ContinuousClock.now
        let notReady = try await TestInfrastructure.waitUntil(timeout: .seconds(8)) {
            try await HTTP.get("\(endpoints.ingestURL)/readyz").status == 503
        }
        #expect(notReady, "readiness turns false while Kafka does not answer")
        try await Task.sleep(for: .seconds(2))
        let stalled = try await Pipeline.ingestCounters(endpoints)
        try await Task.sleep(for: .seconds(2))
        let stillStalled = try await Pipeline.ingestCounters(endpoints)
        // Ingest stopped reading the socket: unacknowledged are at most the window, plus the one
        // frame read and waiting for a slot.
        #expect(stillStalled.received - stillStalled.acknowledged <= window + 1, "\(stillStalled)")
        #expect(stillStalled.received == stalled.received, "ingest kept reading while Kafka was down: \(stalled) → \(stillStalled)")
        let supplierMetrics = try await Pipeline.supplierMetrics(endpoints)
        #expect(MetricsText.value("odds_supplier_slow_client_disconnects_total", in: supplierMetrics) == 0)

        try await Task.sleep(until: pausedAt + .seconds(10))
        #expect(kill(broker.process.pid, SIGCONT) == 0)
        let recovered = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            try await HTTP.get("\(endpoints.ingestURL)/readyz").status == 200
        }
        #expect(recovered, "readiness comes back: \(ingest.output.suffix(1_500))")
        let caughtUp = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            try await Pipeline.ingestCounters(endpoints).received > stillStalled.received + 1_000
        }
        #expect(caughtUp, "ingest reads again")

        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
        let journal = try FeedJournal(path: journalPath)
        let counters = try await Pipeline.waitForIngest(endpoints, throughSeq: journal.lastSeq)
        #expect(counters.received == journal.stream.count + journal.markets, "\(counters)")
        let topics = try await Pipeline.readTopics(brokers: broker.bootstrap, odds: counters.published, deadLetters: counters.deadLettered)
        #expect(topics.odds.count == journal.valid.count + journal.markets)
        #expect(topics.deadLetters.count == journal.invalid.count)
        #expect(FeedChecks.expectHeaders(topics) == 0)
        FeedChecks.expectStreamMessagesInJournal(topics, journals: [journal])
        // Retried deliveries are not duplicated (idempotent producer): exactly once, in order.
        FeedChecks.expectEveryStreamFrame(of: journal, in: topics, exactlyOnce: true)
        #expect(topics.snapshotPositions.count == 1, "snapshots at \(topics.snapshotPositions)")
        if let snapshot = topics.snapshotPositions.first {
            try FeedChecks.expectSnapshot(at: snapshot, of: journal, in: topics)
        }
        FeedChecks.expectFeedOrderPerPartition(topics)
        FeedChecks.expectClaimsHold(topics, markets: journal.markets)
        let metrics = try await Pipeline.ingestMetrics(endpoints)
        #expect(MetricsText.sum(prefix: "odds_ingest_snapshots_total{", in: metrics) == 1)
        #expect(MetricsText.value("odds_ingest_feed_protocol_errors_total", in: metrics) == 0)
    }

    @Test("bad configuration: a malformed broker list or URL is one line and exit 78")
    func malformedConfiguration() async throws {
        for (variable, value, message) in [
            ("KAFKA_BROKERS", "kafka-without-port", "odds-ingest: invalid configuration: KAFKA_BROKERS must be a comma-separated list of host:port, got \"kafka-without-port\""),
            ("SUPPLIER_WS_URL", "http://127.0.0.1:8081/ws", "odds-ingest: invalid configuration: SUPPLIER_WS_URL must be a ws/wss URL, got \"http://127.0.0.1:8081/ws\""),
        ] {
            let process = try ManagedProcess(executable: try Pipeline.binary("odds-ingest"), arguments: [],
                                             environment: [variable: value, "METRICS_PORT": "\(try TestInfrastructure.freePort())"])
            let status = await process.waitForExit(timeout: .seconds(20))
            #expect(status != nil, "still running after 20 s: \(process.output.suffix(2000))")
            #expect(status == 78)
            #expect(process.output.trimmingCharacters(in: .whitespacesAndNewlines) == message)
        }
    }

    @Test("bad configuration: an unreachable broker, then an unreachable supplier, mean retrying with readiness false, not an exit")
    func unreachableDependencies() async throws {
        // Nothing answers on the broker port nor on the supplier's: ingest retries reading its
        // resume position from Kafka and does not connect to the supplier before it has one.
        let endpoints = try FeedEndpoints()
        let deadBroker = "127.0.0.1:\(try TestInfrastructure.freePort())"
        let ingest = try await Pipeline.startIngest(endpoints, brokers: deadBroker, environment: ["INGEST_RECONNECT_MAX_MS": "300"])
        defer { ingest.stop(signal: SIGKILL) }
        let retriedKafka = try await TestInfrastructure.waitUntil(timeout: .seconds(60), interval: .milliseconds(200)) {
            ingest.output.components(separatedBy: "cannot read the feed position from Kafka yet").count > 2
        }
        #expect(retriedKafka, "ingest keeps retrying Kafka and logs each failed attempt: \(ingest.output.suffix(1_500))")
        #expect(ingest.isRunning)
        #expect(!ingest.output.contains("connecting to supplier"), "no supplier connection before Kafka answered")
        let waiting = try await Pipeline.ingestMetrics(endpoints)
        #expect(MetricsText.value("odds_ingest_connect_attempts_total", in: waiting) == 0)
        var readiness = try await HTTP.get("\(endpoints.ingestURL)/readyz")
        #expect(readiness.status == 503)
        #expect(readiness.body.contains(#""supplier":false"#))
        #expect(readiness.body.contains(#""kafka":false"#))
        #expect(try await HTTP.get("\(endpoints.ingestURL)/healthz").status == 200)
        // A stop waits for the Kafka attempt in progress (bounded by its own timeout).
        #expect(await ingest.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
        #expect(ingest.output.contains("feed reader stopped before it connected"))

        // Kafka answers (empty: no position), the supplier does not: ingest retries the supplier,
        // asking for a snapshot each time.
        let broker = try await KafkaDevBrokerProcess()
        defer { broker.stop() }
        let second = try FeedEndpoints()
        let retrying = try await Pipeline.startIngest(second, brokers: broker.bootstrap, environment: ["INGEST_RECONNECT_MAX_MS": "300"])
        defer { retrying.stop(signal: SIGKILL) }
        let retriedSupplier = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            // "[OddsIngest] connecting to supplier": one line per attempt (not the "reconnecting
            // to supplier after backoff" lines between them).
            retrying.output.components(separatedBy: "] connecting to supplier").count > 4
        }
        #expect(retriedSupplier, "ingest keeps retrying the supplier and logs each attempt: \(retrying.output.suffix(1_500))")
        #expect(retrying.isRunning)
        #expect(retrying.output.contains("no feed position in Kafka"))
        let kafkaReady = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) {
            try await HTTP.get("\(second.ingestURL)/readyz").body.contains(#""kafka":true"#)
        }
        #expect(kafkaReady)
        readiness = try await HTTP.get("\(second.ingestURL)/readyz")
        #expect(readiness.status == 503)
        #expect(readiness.body.contains(#""supplier":false"#))
        let metrics = try await Pipeline.ingestMetrics(second)
        let attempts = MetricsText.value("odds_ingest_connect_attempts_total", in: metrics)
        #expect(attempts >= 4)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="none"}"#, in: metrics) >= 4)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: metrics) == 0)
        #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="memory"}"#, in: metrics) == 0)
        #expect(await retrying.stopAsync(signal: SIGTERM, timeout: .seconds(30)) == 0)
    }
}
