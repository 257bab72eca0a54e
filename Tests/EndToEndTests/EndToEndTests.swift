import Contracts
import Foundation
import IntegrationSupport
import Kafka
import Testing
@testable import SupplierSimulator

/// The four real executables (supplier-simulator, odds-ingest, odds-processor, odds-service from
/// ODDS_TEST_BIN_DIR) with a private redis-server and kafka-dev-broker and a scratch database on
/// the test PostgreSQL, checked against the supplier's journal of everything it emitted: the
/// final PostgreSQL state (current and history), the Redis hashes, and what a WebSocket
/// subscriber of every event received. Convergence is awaited by polling, never by fixed sleeps
/// (the feed itself runs for a fixed time).
///
/// odds-feed/2: the journal starts with every market's starting state (`initial` lines), which
/// ingest's first-start snapshot carries through the pipeline; stream frames carry an epoch and
/// a seq, which ingest stamps on its Kafka messages and resumes from after a restart.
@Suite("End to end", .serialized, .timeLimit(.minutes(3)))
struct EndToEndTests {
    /// 20 events × 3 markets at 400 updates/s for 8 s, no faults.
    @Test("steady rate: journal = PostgreSQL = Redis = WebSocket, every applied version delivered")
    func steadyRate() async throws {
        try await PipelineWorld.with(.init(rate: 400, generatedEvents: 16, seed: 101)) { world in
            let outcome = try await PipelineRun.outcome(world, feeding: { _ in try await Task.sleep(for: .seconds(8)) })
            print("e2e steady rate: \(outcome.summary)")
            #expect(!outcome.journal.accepted.isEmpty, "the feed journaled nothing: \(outcome.summary)")
            #expect(outcome.journal.rejected.isEmpty && outcome.journal.accepted.count == outcome.journal.count(kind: "valid"))
            outcome.expectFinalStateExact(catalogue: world.eventIds)
            outcome.expectEveryAppliedVersionDelivered()
            outcome.expectProcessorAccounting()
            // Without faults no version reaches the processor twice or late.
            #expect(MetricsText.value("odds_processor_stale_total", in: outcome.processorMetrics) == 0)

            // Kafka holds ingest's first-start snapshot (taken at seq 0: the supplier does not
            // move while nobody listens, so it is the journal's initial lines) and then every
            // journaled frame exactly once, under its own position.
            let journal = outcome.journal
            let topics = try await FeedTopics.read(world, odds: journal.accepted.count + journal.initial.count, deadLetters: 0)
            let missing = topics.missing(journal)
            #expect(missing.accepted.isEmpty, "journaled frames not in odds_updates under their position: \(missing.accepted.prefix(3).map(\.seq))")
            #expect(topics.contradicting(journal).isEmpty, "\(topics.contradicting(journal).prefix(3))")
            #expect(topics.count(topic: Topics.oddsUpdates) == journal.accepted.count + journal.initial.count,
                    "odds_updates holds \(topics.count(topic: Topics.oddsUpdates)) messages, expected \(journal.accepted.count) frames + \(journal.initial.count) snapshot markets")
            let snapshot = topics.snapshotMessages(epoch: journal.epoch)
            #expect(snapshot.allSatisfy { $0.snapshot == 0 } && snapshot.count == journal.initial.count
                    && Set(snapshot.map(\.value)) == Set(journal.initial.map(\.frame)),
                    "the first snapshot is not the journal's initial state: \(snapshot.count) frames at \(Set(snapshot.compactMap(\.snapshot)))")
            #expect(topics.count(topic: Topics.oddsUpdatesDeadLetter) == 0)
        }
    }

    /// Every fault the supplier can inject: truncated (malformed) frames, contract-breaking
    /// prices, duplicates of a market's latest frame, re-sends of older versions, and dropping
    /// every connection every 2 s. Valid updates must end exact and never regress; invalid
    /// frames must all be in the DLQ, in order, with their reason.
    @Test("every fault injected: valid updates exact, stale re-sends never regress, invalid frames in the DLQ")
    func faultInjection() async throws {
        let feed = PipelineWorld.Feed(rate: 400, generatedEvents: 16, seed: 202, malformed: 0.03, invalid: 0.03,
                                      duplicate: 0.06, outOfOrder: 0.06, disconnectEvery: 2)
        try await PipelineWorld.with(feed) { world in
            let outcome = try await PipelineRun.outcome(world, feeding: { _ in try await Task.sleep(for: .seconds(8)) })
            print("e2e faults: \(outcome.summary)")
            let journal = outcome.journal
            for kind in ["malformed", "invalid", "duplicate", "out_of_order"] {
                #expect(journal.count(kind: kind) > 0, "no \(kind) frame was injected: \(outcome.summary)")
            }
            #expect(MetricsText.value("odds_ingest_connect_attempts_total", in: outcome.ingestMetrics) >= 3,
                    "the supplier's scheduled disconnects did not happen")
            // Each reconnect resumes after the last frame read (a replay, of nothing: the
            // supplier wrote everything buffered before closing); only the first start asked
            // for a snapshot.
            #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: outcome.ingestMetrics) >= 2)
            #expect(MetricsText.sum(prefix: "odds_ingest_snapshots_total{", in: outcome.ingestMetrics) == 1)

            outcome.expectFinalStateExact(catalogue: world.eventIds)
            outcome.expectEveryAppliedVersionDelivered()
            outcome.expectProcessorAccounting()
            // Duplicates and older versions reached the processor and were dropped by the guard.
            #expect(MetricsText.value("odds_processor_stale_total", in: outcome.processorMetrics) > 0)
            #expect(Int(MetricsText.value("odds_ingest_published_total", in: outcome.ingestMetrics))
                    == journal.accepted.count + outcome.ingestSnapshotFrames)
            #expect(Int(MetricsText.sum(prefix: "odds_dlq_total{", in: outcome.ingestMetrics)) == journal.rejected.count)

            // The DLQ holds exactly the frames the validator rejects, in order, with the reason
            // and their stream position.
            let deadLetters = try await KafkaTopicReader.readAll(
                brokers: world.broker.bootstrap, topics: [Topics.oddsUpdatesDeadLetter],
                expected: [Topics.oddsUpdatesDeadLetter: journal.rejected.count])
            #expect(deadLetters.count == journal.rejected.count,
                    "DLQ holds \(deadLetters.count) messages, the journal \(journal.rejected.count) invalid frames")
            var wrong: [String] = []
            for (message, rejected) in zip(deadLetters, journal.rejected) {
                let header = { (name: String) in message.headers.first(named: name).map { String(decoding: $0, as: UTF8.self) } }
                let error = header(DeadLetterHeaders.error) ?? ""
                let source = header(DeadLetterHeaders.source)
                let position = "\(header(FeedHeaders.epoch) ?? "-"):\(header(FeedHeaders.seq) ?? "-")"
                if message.valueString != rejected.entry.frame || !error.hasPrefix(rejected.code) || source != "odds-ingest"
                    || position != "\(rejected.entry.epoch):\(rejected.entry.seq)" {
                    wrong.append("seq \(rejected.entry.seq) (\(rejected.code)): DLQ offset \(message.offset) at \(position) error \(error) source \(source ?? "-")")
                }
            }
            #expect(wrong.isEmpty, "DLQ differs from the journal's invalid frames: \(wrong.prefix(5))")
        }
    }

    /// kill -9 of ingest, processor and odds-service, twice each, at seeded moments while the
    /// supplier streams; each restarts after a seeded pause. The subscriber reconnects when
    /// odds-service is back and resumes with the versions it has.
    @Test("kill -9 of ingest, processor and odds-service while streaming: final state exact, no regression")
    func crashes() async throws {
        let plan = CrashPlan(seed: 0x0DD5_C4A5)
        try await PipelineWorld.with(.init(rate: 300, generatedEvents: 16, seed: 303)) { world in
            let outcome = try await PipelineRun.outcome(world, feeding: { _ in
                let streamStart = ContinuousClock.now
                for step in plan.steps {
                    try await Task.sleep(until: streamStart + step.at)
                    await world.kill(step.component)
                    try await Task.sleep(for: step.pause)
                    try await world.start(step.component)
                }
                try await Task.sleep(until: streamStart + plan.streamFor)
            }, settled: { run in
                // One more kill once nothing changes any more: the subscriber's resume then
                // holds every current version, so it must get empty snapshots and nothing else
                // (while streaming, most markets move during the downtime, which hides a resume
                // that re-sends what the client has).
                let connections = run.subscriber.connectionCount
                await world.kill(.service)
                try await world.start(.service)
                let resumed = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
                    run.subscriber.hasAllSnapshots(connection: connections)
                }
                #expect(resumed, "the subscriber did not resume after the last odds-service restart")
            })
            print("e2e crashes (\(plan)): \(outcome.summary)")
            outcome.expectFinalStateExact(catalogue: world.eventIds)
            let serviceKills = plan.steps.filter { $0.component == .service }.count
            #expect(outcome.subscriber.connectionCount == 2 + serviceKills,
                    "the subscriber should have resumed once per odds-service restart")
            let lastConnection = outcome.subscriber.connectionCount - 1
            let resent = outcome.subscriber.observations.filter { $0.connection == lastConnection }
            #expect(resent.isEmpty, "an up-to-date resume got \(resent.count) updates again, e.g. \(resent.first.map { "\($0.update.marketKey) v\($0.update.version)" } ?? "")")

            // odds-feed/2: a restarted ingest resumes after the greatest position Kafka is known
            // to hold, so a kill -9 of ingest loses nothing: every valid journaled frame is in
            // the odds topic (by content, and under its own position).
            let journal = outcome.journal
            let topics = try await FeedTopics.read(world, odds: journal.accepted.count, deadLetters: 0)
            let published = Set(topics.messages.filter { $0.topic == Topics.oddsUpdates }.map(\.value))
            let missing = journal.entries.filter { $0.kind == "valid" && !published.contains($0.frame) }
            let misplaced = topics.missing(journal).accepted
            print("e2e crashes: \(topics.count(topic: Topics.oddsUpdates)) messages in odds_updates; \(missing.count) valid journaled frames missing (by content), \(misplaced.count) missing under their position")
            #expect(missing.isEmpty, "valid frames missing from odds_updates after ingest kills: \(missing.count), e.g. seq \(missing.prefix(5).map(\.seq))")
            #expect(misplaced.isEmpty, "frames not in odds_updates under their (feed-epoch, feed-seq): seq \(misplaced.prefix(5).map(\.seq))")
            #expect(topics.contradicting(journal).isEmpty, "\(topics.contradicting(journal).prefix(3))")
            // The last ingest process started from Kafka's claim, with a replay of what its
            // predecessor had read but Kafka had not acknowledged (or of nothing).
            #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: outcome.ingestMetrics) >= 1)
            #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: outcome.ingestMetrics) >= 1)
        }
    }

    /// kill -9 of ingest at 6 seeded moments while the supplier streams at 2,000 frames/s with
    /// every fault (truncated and contract-breaking frames, duplicates, older re-sends), each
    /// time restarted after a seeded pause. Every restart reads Kafka's newest claims and asks
    /// to resume after the greatest, so every stream frame ends in Kafka at least once, under
    /// its position. Passes on whatever rate this machine reaches (the feed pauses while ingest
    /// is down; the journal says what was emitted).
    @Test("kill -9 of ingest 6 times at 2,000/s with every fault: every journaled frame in Kafka, final state exact")
    func ingestKillsUnderLoad() async throws {
        let plan = IngestKillPlan(seed: 0x1_6E57_0006)
        let feed = PipelineWorld.Feed(rate: 2_000, generatedEvents: 16, seed: 404, malformed: 0.02, invalid: 0.02,
                                      duplicate: 0.02, outOfOrder: 0.02)
        try await PipelineWorld.with(feed) { world in
            var seqAtKill: [Int] = []
            // Per restarted ingest process: stream frames it got replayed (read by its
            // predecessor, not known to be in Kafka).
            var replayed: [Int] = []
            let outcome = try await PipelineRun.outcome(world, feeding: { _ in
                let streamStart = ContinuousClock.now
                for (index, kill) in plan.kills.enumerated() {
                    try await Task.sleep(until: streamStart + kill.at)
                    let metrics = await world.metrics(.ingest)
                    seqAtKill.append(metrics.isEmpty ? -1 : Int(MetricsText.value("odds_ingest_feed_seq", in: metrics)))
                    if index > 0 { replayed.append(Int(MetricsText.value("odds_ingest_frames_replayed_total", in: metrics))) }
                    await world.kill(.ingest)
                    try await Task.sleep(for: kill.pause)
                    try await world.start(.ingest)
                }
                try await Task.sleep(until: streamStart + plan.streamFor)
            })
            let journal = outcome.journal
            replayed.append(Int(MetricsText.value("odds_ingest_frames_replayed_total", in: outcome.ingestMetrics)))
            print("e2e ingest kills under load (\(plan); last seq read before each kill \(seqAtKill); frames replayed to each restarted ingest \(replayed)): \(outcome.summary)")
            // A message's claim never covers the message itself, so a restart after an ingest
            // that had published stream frames always gets some replayed.
            #expect(replayed.reduce(0, +) > 0, "no restarted ingest got frames replayed: the kills exercised nothing")
            for kind in ["malformed", "invalid", "duplicate", "out_of_order"] {
                #expect(journal.count(kind: kind) > 0, "no \(kind) frame was injected: \(outcome.summary)")
            }

            let topics = try await FeedTopics.read(world, odds: journal.accepted.count, deadLetters: journal.rejected.count)
            let missing = topics.missing(journal)
            let validMissing = missing.accepted.filter { $0.kind == "valid" }
            print("e2e ingest kills under load: \(topics.count(topic: Topics.oddsUpdates)) messages in odds_updates, \(topics.count(topic: Topics.oddsUpdatesDeadLetter)) in the DLQ; missing under their position: \(validMissing.count) valid, \(missing.accepted.count) accepted, \(missing.rejected.count) rejected frames")
            #expect(validMissing.isEmpty, "valid journaled frames not in odds_updates under their (feed-epoch, feed-seq) with their content: \(validMissing.count), e.g. seq \(validMissing.prefix(5).map(\.seq))")
            #expect(missing.accepted.isEmpty, "re-sent (duplicate/out-of-order) frames not in odds_updates: seq \(missing.accepted.prefix(5).map(\.seq))")
            #expect(missing.rejected.isEmpty, "invalid frames not in the DLQ under their position: seq \(missing.rejected.prefix(5).map(\.seq))")
            #expect(topics.contradicting(journal).isEmpty, "\(topics.contradicting(journal).prefix(3))")

            outcome.expectFinalStateExact(catalogue: world.eventIds)
            #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: outcome.ingestMetrics) >= 1,
                    "the last ingest process did not resume from Kafka's claim")
        }
    }

    /// The stream ends (SUPPLIER_MAX_FRAMES) on a valid update that suspends a market; Kafka is
    /// frozen (SIGSTOP of the broker) while ingest reads the last several hundred frames, so
    /// when ingest is killed right after reading that update, Kafka has acknowledged none of
    /// them. The restarted ingest must resume from Kafka's claim and replay them: the market
    /// ends suspended everywhere, at that version.
    @Test("a market whose last journaled update is suspended, ingest killed right after reading it: suspended everywhere")
    func suspendedLastUpdateSurvivesIngestKill() async throws {
        var feed = PipelineWorld.Feed(rate: 400, generatedEvents: 16, seed: 505)
        // The generator is deterministic for a seed (kinds, markets and statuses of frame N),
        // so the frame is found by running it here; the journal must then agree.
        let target = try #require(SuspendingFrame.find(for: feed, atOrAfter: 600),
                                  "no suspending frame in the first 20,000 of seed \(feed.seed)")
        feed.maxFrames = target.seq
        try await PipelineWorld.with(feed) { world in
            let broker = world.broker.process
            var claimWhenKilled = -1.0
            let outcome = try await PipelineRun.outcome(world, feeding: { _ in
                try await world.waitForMetrics(.ingest, "ingest publishing stream frames (seq 50)") {
                    MetricsText.value("odds_ingest_feed_seq", in: $0) >= 50
                }
                broker.signal(SIGSTOP)
                do {
                    try await world.waitForMetrics(.ingest, "ingest reading frame \(target.seq) while Kafka is stopped") {
                        MetricsText.value("odds_ingest_feed_seq", in: $0) >= Double(target.seq)
                    }
                    claimWhenKilled = await world.metric(.ingest, "odds_ingest_kafka_complete_through_seq") ?? -1
                    await world.kill(.ingest)
                } catch {
                    broker.signal(SIGCONT)
                    throw error
                }
                broker.signal(SIGCONT)
                try await world.start(.ingest)
                try await world.waitForMetrics(.ingest, "the restarted ingest reading frame \(target.seq) again") {
                    MetricsText.value("odds_ingest_feed_seq", in: $0) >= Double(target.seq)
                }
            })
            let journal = outcome.journal
            print("e2e suspended last update (seed \(feed.seed), frame \(target.seq) suspends \(target.market); Kafka complete through \(claimWhenKilled) when ingest was killed): \(outcome.summary)")

            // The journal's frame N is what the generator said: a valid update suspending an open market.
            let last = journal.entries.last
            let lastUpdate = last.flatMap { try? OddsUpdateValidator.validate($0.frame).get() }
            #expect(journal.entries.count == target.seq && last?.seq == target.seq && last?.kind == "valid",
                    "the stream did not end on frame \(target.seq): \(journal.entries.count) frames, last \(last.map { "\($0.seq) \($0.kind)" } ?? "none")")
            #expect(lastUpdate?.marketKey == target.market && lastUpdate?.status == .suspended,
                    "frame \(target.seq) is \(lastUpdate.map { "\($0.marketKey) \($0.status)" } ?? "not valid"), expected \(target.market) suspended")
            let before = (journal.initialUpdates + journal.accepted.dropLast()).filter { $0.marketKey == target.market }
                .max { $0.version < $1.version }
            #expect(before?.status == .open, "\(target.market) was not open before frame \(target.seq)")
            let want = try #require(lastUpdate)
            #expect(journal.newest[target.market] == want)

            outcome.expectFinalStateExact(catalogue: world.eventIds)
            for (store, update) in [("PostgreSQL", outcome.postgresCurrent[target.market]), ("Redis", outcome.redis.current[target.market]),
                                    ("the WebSocket subscriber", outcome.subscriber.newest[target.market])] {
                #expect(update == want, "\(store) holds \(update.map { "v\($0.version) \($0.status)" } ?? "nothing") for \(target.market), not v\(want.version) suspended")
            }
            let rest = try await RESTOdds.get(world, eventId: target.market.eventId)
            let market = rest[target.market.market]
            #expect(market?.status == "suspended" && market?.version == want.version,
                    "GET /v1/events/\(target.market.eventId)/odds: \(target.market.market) is \(market.map { "v\($0.version) \($0.status)" } ?? "absent"), not v\(want.version) suspended")
            let eventNewest = journal.newest.filter { $0.key.eventId == target.market.eventId }
            #expect(Dictionary(uniqueKeysWithValues: eventNewest.map { ($0.key.market, $0.value.version) }) == rest.mapValues(\.version),
                    "REST odds of \(target.market.eventId) differ from the journal: \(rest.mapValues(\.version))")

            // The loss was real: Kafka had not acknowledged frame N when ingest died, and the
            // restarted ingest replayed it from Kafka's claim.
            #expect(claimWhenKilled >= 0 && claimWhenKilled < Double(target.seq), "Kafka was complete through \(claimWhenKilled) when ingest was killed")
            #expect(MetricsText.value(#"odds_ingest_resume_source_total{source="kafka"}"#, in: outcome.ingestMetrics) == 1)
            #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: outcome.ingestMetrics) >= 1)
            #expect(MetricsText.value("odds_ingest_frames_replayed_total", in: outcome.ingestMetrics) >= 1)
            let topics = try await FeedTopics.read(world, odds: journal.accepted.count, deadLetters: 0)
            #expect(topics.missing(journal).accepted.isEmpty, "frames missing from odds_updates: \(topics.missing(journal).accepted.prefix(5).map(\.seq))")
        }
    }

    /// kill -9 of the supplier while it streams, and a restart: the new process has a new,
    /// larger epoch and none of the old one's history, so ingest's resume (after the last frame
    /// it read, of the old epoch) is answered with a snapshot (`unknown_epoch`). Its versions
    /// continue above the old ones, so every store ends at the new supplier's state; nothing
    /// goes back on the way.
    @Test("kill -9 of the supplier and a restart (new epoch): ingest takes a snapshot, the stores end at the new supplier's state")
    func supplierRestart() async throws {
        try await PipelineWorld.with(.init(rate: 400, generatedEvents: 16, seed: 606)) { world in
            var killed: JournalModel?
            let outcome = try await PipelineRun.outcome(world, feeding: { _ in
                try await Task.sleep(for: .seconds(4))
                await world.kill(.supplier)
                // What the killed supplier had flushed to its journal (the restart truncates it).
                killed = try JournalModel(path: world.journalPath)
                try await Task.sleep(for: .milliseconds(500))
                try await world.start(.supplier)
                try await world.waitForMetrics(.ingest, "ingest's snapshot from the restarted supplier (unknown_epoch)") {
                    MetricsText.value(#"odds_ingest_snapshots_total{reason="unknown_epoch"}"#, in: $0) >= 1
                }
                try await Task.sleep(for: .seconds(4))
            }, journal: { model in
                // History rows and WebSocket updates may carry versions of the killed supplier:
                // its journal's, and those of frames it sent after its last journal flush (only
                // Kafka has them, under the old epoch).
                guard let killed else { return model }
                let topics = try await FeedTopics.read(world, odds: killed.accepted.count + model.accepted.count, deadLetters: 0)
                let lastJournaled = killed.entries.last?.seq ?? 0
                let unjournaled = topics.messages.filter {
                    $0.topic == Topics.oddsUpdates && $0.epoch == killed.epoch && ($0.seq ?? 0) > lastJournaled
                }
                print("e2e supplier restart: the killed supplier journaled \(killed.entries.count) frames, Kafka holds \(unjournaled.count) more of its epoch")
                let updates = unjournaled.compactMap { try? OddsUpdateValidator.validate($0.value).get() }
                return model.including(earlier: killed.allUpdates + updates)
            })
            let journal = outcome.journal
            let old = try #require(killed)
            print("e2e supplier restart (epoch \(old.epoch) -> \(journal.epoch)): \(outcome.summary)")
            #expect(old.inconsistencies.isEmpty, "the killed supplier's journal: \(old.inconsistencies)")
            #expect(journal.epoch > old.epoch, "the restarted supplier's epoch \(journal.epoch) is not above \(old.epoch)")
            #expect(!old.entries.isEmpty, "the first supplier emitted nothing before it was killed")
            let belowOld = journal.initialUpdates.filter { $0.version <= old.newest[$0.marketKey]?.version ?? 0 }
            #expect(belowOld.isEmpty, "the restarted supplier starts below the old versions for \(belowOld.prefix(3).map(\.marketKey))")
            #expect(MetricsText.value(#"odds_ingest_snapshots_total{reason="unknown_epoch"}"#, in: outcome.ingestMetrics) >= 1)
            #expect(MetricsText.value(#"odds_ingest_snapshots_total{reason="requested"}"#, in: outcome.ingestMetrics) == 1)

            outcome.expectFinalStateExact(catalogue: world.eventIds)
            #expect(outcome.subscriber.connectionCount == 1)
            // Everything the new supplier emitted reached Kafka under its position, after a
            // snapshot of every market at the new epoch.
            let topics = try await FeedTopics.read(world, odds: journal.accepted.count, deadLetters: 0)
            #expect(topics.missing(journal).accepted.isEmpty,
                    "frames of the new epoch missing from odds_updates: \(topics.missing(journal).accepted.prefix(5).map(\.seq))")
            // Not asserted: what the killed supplier journaled (handed to its client buffer) but
            // never wrote to ingest's socket is gone with it; later versions supersede it.
            print("e2e supplier restart: \(topics.missing(old).accepted.count) frames journaled by the killed supplier never reached Kafka")
            #expect(topics.contradicting(journal).isEmpty && topics.contradicting(old).isEmpty,
                    "\(topics.contradicting(journal).prefix(3)) \(topics.contradicting(old).prefix(3))")
            let snapshot = topics.snapshotMessages(epoch: journal.epoch)
            let snapshotMarkets = Set(snapshot.compactMap { try? OddsUpdateValidator.validate($0.value).get().marketKey })
            #expect(snapshotMarkets.count == journal.initial.count,
                    "the snapshot of the new epoch has \(snapshot.count) frames for \(snapshotMarkets.count) of \(journal.initial.count) markets")
        }
    }
}

/// When to kill what: each of ingest, processor and odds-service twice, in a seeded order, about
/// every 2.8 s with seeded jitter, each restarted after a seeded pause of 0.3–1.5 s; the feed
/// goes on for 5 s after the last restart so every market gets newer versions.
struct CrashPlan: Sendable, CustomStringConvertible {
    struct Step: Sendable {
        let component: PipelineWorld.Component
        /// Since the feed started.
        let at: Duration
        let pause: Duration
    }

    let seed: UInt64
    let steps: [Step]
    let streamFor: Duration

    init(seed: UInt64) {
        self.seed = seed
        var random = SeededGenerator(seed: seed)
        var order: [PipelineWorld.Component] = []
        for _ in 0..<2 { order += [PipelineWorld.Component.ingest, .processor, .service].shuffled(using: &random) }
        steps = order.enumerated().map { index, component in
            Step(component: component, at: .milliseconds(1_500 + index * 2_800 + Int(random.next() % 1_000)),
                 pause: .milliseconds(300 + Int(random.next() % 1_200)))
        }
        streamFor = steps.last!.at + steps.last!.pause + .seconds(5)
    }

    var description: String {
        "seed \(seed): " + steps.map { "\($0.component) at \($0.at), back after \($0.pause)" }.joined(separator: "; ")
    }
}

/// Six kills of ingest: about every 2.4 s from 1.5 s on, with up to 1.2 s of seeded jitter, each
/// restarted after a seeded pause of 0.15–1 s; the feed goes on for 3 s after the last restart.
struct IngestKillPlan: Sendable, CustomStringConvertible {
    struct Kill: Sendable {
        /// Since the feed started.
        let at: Duration
        let pause: Duration
    }

    let seed: UInt64
    let kills: [Kill]
    let streamFor: Duration

    init(seed: UInt64, count: Int = 6) {
        self.seed = seed
        var random = SeededGenerator(seed: seed)
        kills = (0..<count).map { index in
            Kill(at: .milliseconds(1_500 + index * 2_400 + Int(random.next() % 1_200)), pause: .milliseconds(150 + Int(random.next() % 850)))
        }
        streamFor = kills.last!.at + kills.last!.pause + .seconds(3)
    }

    var description: String {
        "seed \(seed): ingest killed at " + kills.map { "\($0.at) (back after \($0.pause))" }.joined(separator: ", ")
    }
}

/// The first stream frame of a feed that suspends an open market, found by running the
/// supplier's own generator (deterministic for a seed: kinds, markets and statuses of every
/// frame; only timestamps and versions depend on the clock).
enum SuspendingFrame {
    static func find(for feed: PipelineWorld.Feed, atOrAfter first: Int, limit: Int = 20_000) -> (seq: Int, market: MarketKey)? {
        var generator = FeedGenerator(
            events: Catalogue.events(generatedCount: feed.generatedEvents),
            faults: FaultRates(malformed: feed.malformed, invalid: feed.invalid, duplicate: feed.duplicate, outOfOrder: feed.outOfOrder),
            seed: feed.seed, firstVersion: 1_000)
        var status = generator.markets.map(\.status)
        let time = Timestamp(millisecondsSinceEpoch: 0)
        for seq in 1...limit {
            let frame = generator.nextFrame(at: time)
            guard frame.kind == .valid, let index = frame.market else { continue }
            let now = generator.markets[index].status
            defer { status[index] = now }
            if seq >= first && status[index] == .open && now == .suspended {
                let market = generator.markets[index]
                return (seq, MarketKey(eventId: market.event.eventId, market: market.market.rawValue))
            }
        }
        return nil
    }
}

/// `GET /v1/events/{id}/odds` of odds-service: market → (status, version).
enum RESTOdds {
    struct Market: Sendable, Equatable {
        let status: String
        let version: Int64
    }

    static func get(_ world: PipelineWorld, eventId: String) async throws -> [String: Market] {
        let answer = try await HTTP.get("http://127.0.0.1:\(world.serviceHTTPPort)/v1/events/\(eventId)/odds")
        guard answer.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let markets = object["markets"] as? [[String: Any]]
        else { throw TestFailure("GET /v1/events/\(eventId)/odds answered \(answer.status): \(answer.body.prefix(300))") }
        var result: [String: Market] = [:]
        for market in markets {
            guard let name = market["market"] as? String, let status = market["status"] as? String,
                  let version = (market["version"] as? NSNumber)?.int64Value
            else { throw TestFailure("GET /v1/events/\(eventId)/odds: unreadable market \(market)") }
            result[name] = Market(status: status, version: version)
        }
        return result
    }
}
