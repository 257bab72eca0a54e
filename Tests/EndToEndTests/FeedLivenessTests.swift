import Contracts
import Foundation
import IntegrationSupport
import Testing

/// Feed liveness end to end (issue 14), with the four real executables: when the feed stops
/// (supplier frozen or killed, odds-ingest killed) every market of the feed is shown suspended
/// (`feed_down`) in REST and pushed as a `status` frame to every subscriber, without a single
/// invented supplier version; the markets reopen only once the feed is back and recovered, with
/// the supplier's current prices; nothing goes backwards on the way.
///
/// Defaults throughout: SUPPLIER_ALIVE_INTERVAL_MS 1000, INGEST_FEED_SILENT_MS 2500,
/// INGEST_HEARTBEAT_MS 1000, FEED_STALE_AFTER_MS 3000. How long a suspension took is printed
/// (the bench measures it), never asserted: every wait is bounded by a generous, named limit.
@Suite("Feed liveness end to end", .serialized, .timeLimit(.minutes(4)))
struct FeedLivenessTests {
    /// How long the supplier stays frozen.
    enum Freeze: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Until the suspension reached REST and the follower, plus 2 s.
        case brief
        /// 15 s: longer than ingest's 10 s handshake timeout, so at least one reconnect attempt
        /// to the frozen supplier is abandoned before it thaws.
        case pastHandshakeTimeout
        /// Once the suspension is seen, odds-ingest is killed (-9) and started again while the
        /// supplier is still frozen; thawed 3 s after the new ingest is up. The new ingest
        /// resumes from Kafka's claim, so frames the old one had published may go to Kafka
        /// twice (the processor drops them as stale).
        case ingestRestarted

        var description: String { rawValue }
    }

    @Test("supplier SIGSTOP: every market suspended (feed_down) in REST and pushed per event; SIGCONT: reopened only after recovery, with current prices",
          arguments: Freeze.allCases)
    func supplierFrozen(freeze: Freeze) async throws {
        try await PipelineWorld.with(.init(rate: 400, generatedEvents: 16, seed: 1_401)) { world in
            let events = world.eventIds
            var follower: FeedFollower?
            var late: FeedFollower?
            var stopWall = Timestamp(millisecondsSinceEpoch: 0)
            var stopAt = ContinuousClock.now
            var contAt = ContinuousClock.now
            var duringOutage: [MarketKey: RESTMarket] = [:]
            var afterReopen: [MarketKey: RESTMarket] = [:]
            var openBefore: FeedStatus?
            defer { world.process(.supplier)?.signal(SIGCONT) }

            let outcome = try await PipelineRun.outcome(world, feeding: { run in
                openBefore = try await FeedOutage.waitUntilOpen(world, run.redis, "the feed to be up and open before the freeze")
                // The overlay reaches odds-service over pub/sub a moment after Redis has it: wait
                // until odds-service itself shows every market open before subscribing.
                _ = try await RESTStatusView.waitForAll(world, eventIds: events, "odds-service to show every market open before the follower subscribes",
                                                        timeout: .seconds(30)) { !$0.isFeedDown }
                let watcher = try await FeedFollower.connect(world, eventIds: events, name: "follower")
                follower = watcher
                let unexpected = watcher.snapshots().filter { $0.value.status != nil || $0.value.markets.isEmpty }
                #expect(unexpected.isEmpty,
                        "snapshots taken while the feed is open must carry no status, and every event has markets by now: \(unexpected.prefix(3).map { "\($0.key): status \($0.value.status.map { "\($0)" } ?? "none"), \($0.value.markets.count) markets" })")
                try await Task.sleep(for: .seconds(2))  // the feed streams
                let before = try await RESTStatusView.allOdds(world, eventIds: events)
                #expect(before.count == events.count * 3 && !before.values.contains(where: \.isFeedDown),
                        "markets shown feed_down while the feed is up: \(before.filter { $0.value.isFeedDown }.keys.prefix(3))")

                // Freeze the supplier: connected, but silent.
                let supplier = try #require(world.process(.supplier))
                stopWall = .now()
                stopAt = .now
                supplier.signal(SIGSTOP)

                duringOutage = try await RESTStatusView.waitForAll(world, eventIds: events, "every market suspended (feed_down) in REST after SIGSTOP",
                                                                   timeout: .seconds(30)) { $0.isFeedDown && $0.statusSince != nil }
                let restTook = ContinuousClock.now - stopAt
                try await watcher.waitFor("a suspended status frame for every event after SIGSTOP", world, timeout: .seconds(30)) { [stopAt] follower in
                    Set(follower.firstStatus(from: stopAt) { $0.isSuspended }.keys) == Set(events)
                }
                let pushed = watcher.firstStatus(from: stopAt) { $0.isSuspended }
                let pushTook = pushed.values.map { $0.frame.at - stopAt }.max() ?? .zero
                print("e2e feed liveness (\(freeze)): SIGSTOP -> every market suspended in REST after \(FeedOutage.seconds(restTook)), status frames for all \(events.count) events after \(FeedOutage.seconds(pushTook)) (not asserted)")

                // The overlay: suspended because ingest saw a silent supplier (its heartbeats go on).
                let overlay = try #require(try await FeedOutage.overlay(run.redis), "no overlay in Redis")
                #expect(overlay.state == .suspended && overlay.reason == "feed_down" && overlay.detail == "supplier_silent",
                        "overlay \(overlay)")
                #expect(try await FeedOutage.storedOverlay(world.database) == overlay, "PostgreSQL feed_status differs from Redis")
                // Down since the last frame ingest read (at most an alive interval before the
                // freeze at this rate), and after the state before it.
                let lastFrameEarliest = Timestamp(millisecondsSinceEpoch: stopWall.millisecondsSinceEpoch - 1_500)
                #expect(overlay.since >= lastFrameEarliest && overlay.since > (openBefore?.since ?? Timestamp(millisecondsSinceEpoch: 0)),
                        "the suspension's since \(overlay.since) is not the last frame before the freeze \(stopWall)")
                for (key, market) in duringOutage {
                    #expect(market.statusSince == overlay.since.rfc3339, "\(key): statusSince \(market.statusSince ?? "none"), overlay \(overlay.since)")
                }
                for (eventId, entry) in pushed {
                    #expect(entry.status == .suspended(since: overlay.since), "\(eventId): status frame \(entry.status)")
                }
                let listed = try await RESTStatusView.events(world)
                let notSuspended = events.filter { listed[$0]?.effectiveStatus != "suspended" || listed[$0]?.statusReason != "feed_down" }
                #expect(notSuspended.isEmpty, "GET /v1/events: events not suspended (feed_down): \(notSuspended.prefix(3).map { "\($0): \(listed[$0].map { "\($0)" } ?? "absent")" })")

                // A subscriber that connects during the outage gets the suspension in its snapshots.
                let joiner = try await FeedFollower.connect(world, eventIds: events, name: "late follower")
                late = joiner
                for (eventId, snapshot) in joiner.snapshots() {
                    #expect(snapshot.status == .suspended(since: overlay.since) && !snapshot.markets.isEmpty,
                            "\(eventId): snapshot during the outage carries \(snapshot.status.map { "\($0)" } ?? "no status") with \(snapshot.markets.count) markets")
                }

                switch freeze {
                case .brief:
                    try await Task.sleep(for: .seconds(2))
                case .pastHandshakeTimeout:
                    try await Task.sleep(until: stopAt + .seconds(15))
                case .ingestRestarted:
                    await world.kill(.ingest)
                    try await world.start(.ingest)
                    try await world.waitForMetrics(.ingest, "the restarted ingest reporting the feed down") {
                        MetricsText.value(#"odds_ingest_feed_state{state="down"}"#, in: $0) == 1
                    }
                    try await Task.sleep(for: .seconds(3))
                }
                // Nothing can have recovered while the supplier is frozen.
                let stillSuspended = try await RESTStatusView.allOdds(world, eventIds: events)
                #expect(stillSuspended.values.allSatisfy { $0.isFeedDown }, "a market reopened while the supplier was still frozen")
                #expect(try await FeedOutage.overlay(run.redis) == overlay, "the overlay changed while the supplier was still frozen")

                contAt = .now
                supplier.signal(SIGCONT)
                try await watcher.waitFor("an open status frame for every event after SIGCONT", world, timeout: .seconds(60)) { [contAt] follower in
                    Set(follower.firstStatus(from: contAt) { !$0.isSuspended }.keys) == Set(events)
                }
                afterReopen = try await RESTStatusView.waitForAll(world, eventIds: events, "no market feed_down in REST after recovery",
                                                                  timeout: .seconds(30)) { !$0.isFeedDown }
                let reopened = watcher.firstStatus(from: contAt) { !$0.isSuspended }
                print("e2e feed liveness (\(freeze)): SIGCONT -> open status frames for every event after \(FeedOutage.seconds((reopened.values.map(\.frame.at).max() ?? contAt) - contAt)) (not asserted)")
                try await Task.sleep(for: .seconds(2))  // the feed streams on after the reopening
            })

            let watcher = try #require(follower)
            let joiner = try #require(late)
            let journal = outcome.journal
            print("e2e feed liveness (\(freeze)): \(outcome.summary); follower \(watcher.frames.count) frames, \(watcher.statusFrames().count) status frames; ingest got \(Int(MetricsText.value("odds_ingest_frames_replayed_total", in: outcome.ingestMetrics))) frames replayed (last ingest process)")

            // Reopening only after recovery: no open status frame before SIGCONT, and each event's
            // open frame came after the follower had, for each of its markets, at least the newest
            // version the supplier emitted before the freeze.
            let earlyOpen = watcher.statusFrames().filter { !$0.status.isSuspended && $0.frame.at >= stopAt && $0.frame.at < contAt }
            #expect(earlyOpen.isEmpty, "open status frames before SIGCONT: \(earlyOpen.prefix(3).map { "\($0.eventId) \($0.status)" })")
            var beforeFreeze: [MarketKey: OddsUpdate] = [:]
            for update in journal.allUpdates where update.updatedAt < stopWall {
                if update.version > beforeFreeze[update.marketKey]?.version ?? 0 { beforeFreeze[update.marketKey] = update }
            }
            #expect(beforeFreeze.count == events.count * 3, "the journal has \(beforeFreeze.count) markets before the freeze")
            var reopenedEarly: [String] = []
            for (eventId, open) in watcher.firstStatus(from: contAt, where: { !$0.isSuspended }) {
                let had = watcher.newestVersions(before: open.frame.index)
                for (key, want) in beforeFreeze where key.eventId == eventId && (had[key] ?? 0) < want.version {
                    reopenedEarly.append("\(key): open frame after v\(had[key] ?? 0), the supplier had v\(want.version) before the freeze")
                }
            }
            #expect(reopenedEarly.isEmpty, "reopened before the follower had the prices from before the freeze: \(reopenedEarly.prefix(5))")

            // REST after the reopening: the supplier's current prices (at least the newest
            // version from before the freeze, with the supplier's content), open per the
            // supplier's own status. During the outage: the supplier's versions, none invented.
            for (what, view) in [("during the outage", duringOutage), ("after the reopening", afterReopen)] {
                var wrong: [String] = []
                for (key, market) in view {
                    let emitted = journal.update(key, version: market.version)
                    if emitted == nil || emitted?.odds != market.odds || emitted?.status.rawValue != market.status {
                        wrong.append("\(key) v\(market.version) \(market.odds) \(market.status)")
                    }
                    if what == "after the reopening" {
                        if market.version < beforeFreeze[key]?.version ?? 0 { wrong.append("\(key) v\(market.version) older than before the freeze") }
                        let supplierSuspended = market.status == "suspended"
                        if market.effectiveStatus != market.status || market.statusReason != (supplierSuspended ? "supplier" : nil) || market.statusSince != nil {
                            wrong.append("\(key): effective \(market.effectiveStatus)/\(market.statusReason ?? "-")/\(market.statusSince ?? "-") for supplier status \(market.status)")
                        }
                    }
                }
                #expect(wrong.isEmpty, "REST \(what): \(wrong.prefix(5))")
            }

            // Nothing goes backwards and nothing is lost across suspension and reopening.
            outcome.expectFinalStateExact(catalogue: world.eventIds)
            outcome.expectEveryAppliedVersionDelivered()
            if freeze != .ingestRestarted { outcome.expectProcessorAccounting() }
            #expect(watcher.problems().isEmpty && joiner.problems().isEmpty, "\(watcher.problems().prefix(3)) \(joiner.problems().prefix(3))")
            #expect(watcher.versionRegressions().isEmpty, "\(watcher.versionRegressions().prefix(5))")
            #expect(joiner.versionRegressions().isEmpty, "\(joiner.versionRegressions().prefix(5))")
            var corrupted: [String] = []
            for (_, update) in watcher.updates() + joiner.updates() where journal.update(update.marketKey, version: update.version) != update {
                corrupted.append("\(update.marketKey) v\(update.version)")
            }
            #expect(corrupted.isEmpty, "updates on the followers unlike what the supplier emitted: \(corrupted.prefix(5))")
            // The late follower joined during the outage: it was told of the reopening too.
            #expect(Set(joiner.firstStatus(from: contAt) { !$0.isSuspended }.keys) == Set(events),
                    "the follower that joined during the outage did not get an open status frame for every event")

            // Kafka: every journaled frame once under its position, after the first snapshot; the
            // thawed supplier replayed what ingest had not read, nothing twice.
            let topics = try await FeedTopics.read(world, odds: journal.accepted.count + journal.initial.count, deadLetters: 0)
            #expect(topics.missing(journal).accepted.isEmpty, "frames missing from odds_updates: \(topics.missing(journal).accepted.prefix(5).map(\.seq))")
            #expect(freeze == .ingestRestarted || topics.count(topic: Topics.oddsUpdates) == journal.accepted.count + journal.initial.count,
                    "odds_updates holds \(topics.count(topic: Topics.oddsUpdates)) messages, the journal \(journal.accepted.count) frames + \(journal.initial.count) snapshot markets")

            // Metrics say what happened.
            let processor = outcome.processorMetrics
            #expect(FeedOutage.sum("odds_processor_feed_suspensions_total", labels: [#"feed="supplier-simulator""#, #"detail="supplier_silent""#], in: processor) >= 1)
            #expect(FeedOutage.sum("odds_processor_feed_reopenings_total", labels: [#"feed="supplier-simulator""#], in: processor) >= 1)
            // (A restarted ingest never saw the supplier go silent: only the killed one did.)
            #expect(freeze == .ingestRestarted || MetricsText.value("odds_ingest_feed_silences_total", in: outcome.ingestMetrics) >= 1,
                    "ingest did not count the supplier's silence")
            #expect(MetricsText.value(#"odds_ingest_feed_starts_total{recovery="replay"}"#, in: outcome.ingestMetrics) >= 1,
                    "ingest did not resume the thawed supplier with a replay")
            await watcher.close()
            await joiner.close()
        }
    }

    enum Loss: String, CaseIterable, Sendable, CustomStringConvertible {
        /// kill -9 of odds-ingest only: its heartbeats stop.
        case ingest
        /// kill -9 of the supplier only: ingest stays up and reports it disconnected.
        case supplier
        /// kill -9 of the supplier, then of odds-ingest.
        case supplierAndIngest

        var description: String { rawValue }
        /// The details the suspension may carry.
        var details: Set<String> {
            switch self {
            case .ingest: ["heartbeat_missing"]
            case .supplier: ["supplier_disconnected"]
            case .supplierAndIngest: ["heartbeat_missing", "supplier_disconnected"]
            }
        }
    }

    @Test("feed killed and not restarted (supplier, ingest, or both): every market suspended; subscribers joining later get it in snapshots; restarts of processor and odds-service keep it",
          arguments: Loss.allCases)
    func feedKilled(loss: Loss) async throws {
        try await PipelineWorld.with(.init(rate: 400, generatedEvents: 16, seed: 1_402)) { world in
            let events = world.eventIds
            let rig = try await OutageRig.start(world)
            var followers: [FeedFollower] = []
            do {
                let openBefore = try #require(try await FeedOutage.overlay(rig.redis))
                let watcher = try await FeedFollower.connect(world, eventIds: events, name: "follower")
                followers.append(watcher)
                try await Task.sleep(for: .seconds(2))  // the feed streams

                let killAt = ContinuousClock.now
                if loss != .ingest { await world.kill(.supplier) }
                if loss != .supplier { await world.kill(.ingest) }

                let suspended = try await RESTStatusView.waitForAll(world, eventIds: events, "every market suspended (feed_down) in REST after the kill",
                                                                    timeout: .seconds(30)) { $0.isFeedDown && $0.statusSince != nil }
                let restTook = ContinuousClock.now - killAt
                let seenWall = Timestamp.now()
                try await watcher.waitFor("a suspended status frame for every event after the kill", world, timeout: .seconds(30)) { follower in
                    Set(follower.firstStatus(from: killAt) { $0.isSuspended }.keys) == Set(events)
                }
                let pushed = watcher.firstStatus(from: killAt) { $0.isSuspended }
                let overlay = try #require(try await FeedOutage.overlay(rig.redis), "no overlay in Redis")
                print("e2e feed liveness (killed: \(loss)): suspended (\(overlay.detail ?? "-")) in REST after \(FeedOutage.seconds(restTook)), status frames for all \(events.count) events after \(FeedOutage.seconds((pushed.values.map(\.frame.at).max() ?? killAt) - killAt)) (not asserted)")

                #expect(overlay.state == .suspended && overlay.reason == "feed_down" && loss.details.contains(overlay.detail ?? ""),
                        "overlay \(overlay), expected detail in \(loss.details.sorted())")
                #expect(overlay.since > openBefore.since && overlay.since <= seenWall, "since \(overlay.since): open since \(openBefore.since), seen \(seenWall)")
                #expect(try await FeedOutage.storedOverlay(world.database) == overlay, "PostgreSQL feed_status differs from Redis")
                #expect(suspended.values.allSatisfy { $0.statusSince == overlay.since.rfc3339 })
                for (eventId, entry) in pushed {
                    #expect(entry.status == .suspended(since: overlay.since), "\(eventId): status frame \(entry.status)")
                }
                let listed = try await RESTStatusView.events(world)
                #expect(events.allSatisfy { listed[$0]?.effectiveStatus == "suspended" && listed[$0]?.statusReason == "feed_down" },
                        "GET /v1/events does not show every event suspended: \(listed.values.filter { $0.effectiveStatus != "suspended" }.prefix(3))")

                // A subscriber that connects during the outage.
                let joiner = try await FeedFollower.connect(world, eventIds: events, name: "late follower")
                followers.append(joiner)
                for (eventId, snapshot) in joiner.snapshots() {
                    #expect(snapshot.status == .suspended(since: overlay.since) && !snapshot.markets.isEmpty,
                            "\(eventId): snapshot during the outage carries \(snapshot.status.map { "\($0)" } ?? "no status")")
                }

                // kill -9 and restart of the processor: it keeps the stored suspension, also once
                // it has gone FEED_STALE_AFTER without a heartbeat (ingest dead), or heard ingest
                // say the feed is down for that long (supplier dead).
                await world.kill(.processor)
                try await world.start(.processor)
                if loss == .supplier {
                    try await world.waitForMetrics(.processor, "the restarted processor watching the feed") { text in
                        !FeedOutage.samples("odds_processor_feed_heartbeat_age_seconds", in: text).isEmpty
                    }
                    try await Task.sleep(for: .milliseconds(3_500))  // FEED_STALE_AFTER + 0.5 s of down heartbeats
                    let ingestState = await world.metric(.ingest, #"odds_ingest_feed_state{state="down"}"#)
                    #expect(ingestState == 1, "ingest should report the killed supplier's feed down")
                } else {
                    try await world.waitForMetrics(.processor, "the restarted processor to go FEED_STALE_AFTER (3 s) without a heartbeat") { text in
                        FeedOutage.sum("odds_processor_feed_heartbeat_age_seconds", labels: [#"feed="supplier-simulator""#], in: text) > 3.5
                    }
                }
                let processorMetrics = await world.metrics(.processor)
                #expect(FeedOutage.sum("odds_processor_feed_suspended", labels: [#"feed="supplier-simulator""#], in: processorMetrics) == 1)
                #expect(FeedOutage.sum("odds_processor_feed_reopenings_total", labels: [], in: processorMetrics) == 0)
                #expect(try await FeedOutage.overlay(rig.redis) == overlay, "the overlay changed across the processor restart")
                #expect(try await FeedOutage.storedOverlay(world.database) == overlay)
                let afterProcessor = try await RESTStatusView.allOdds(world, eventIds: events)
                #expect(afterProcessor.count == events.count * 3 && afterProcessor.values.allSatisfy { $0.isFeedDown },
                        "markets not suspended after the processor restart: \(afterProcessor.filter { !$0.value.isFeedDown }.keys.prefix(3))")
                #expect(watcher.statusFrames().allSatisfy { $0.status.isSuspended } && joiner.statusFrames().allSatisfy { $0.status.isSuspended },
                        "an open status frame during the outage")

                // kill -9 and restart of odds-service: what it shows comes from the stored overlay.
                await world.kill(.service)
                try await world.start(.service)
                let afterService = try await RESTStatusView.waitForAll(world, eventIds: events, "every market suspended in REST after the odds-service restart",
                                                                       timeout: .seconds(30)) { _ in true }
                #expect(afterService.values.allSatisfy { $0.isFeedDown && $0.statusSince == overlay.since.rfc3339 },
                        "markets not suspended after the odds-service restart: \(afterService.filter { !$0.value.isFeedDown }.keys.prefix(3))")
                let reconnected = try await FeedFollower.connect(world, eventIds: events, name: "follower after the odds-service restart")
                followers.append(reconnected)
                for (eventId, snapshot) in reconnected.snapshots() {
                    #expect(snapshot.status == .suspended(since: overlay.since), "\(eventId): snapshot after the restart carries \(snapshot.status.map { "\($0)" } ?? "no status")")
                }

                // Versions never went backwards; no supplier version was invented or repeated.
                let watch = await rig.watch.stop()
                #expect(watch.samples > 0 && watch.regressions.isEmpty, "store regressions (\(watch.samples) samples): \(watch.regressions)")
                for follower in followers {
                    #expect(follower.problems().isEmpty, "\(follower.problems().prefix(3))")
                    #expect(follower.versionRegressions().isEmpty, "\(follower.versionRegressions().prefix(5))")
                }
                let history = try await rig.historyProblems()
                #expect(history.rows > 0 && history.problems.isEmpty, "odds_history (\(history.rows) rows): \(history.problems.prefix(5))")
                let current = try await rig.reader.postgresCurrent()
                let shown = afterService.mapValues(\.version)
                #expect(shown == current.mapValues(\.version), "REST versions differ from odds_current during the outage")
            } catch {
                for follower in followers { await follower.close() }
                await rig.close()
                throw error
            }
            for follower in followers { await follower.close() }
            await rig.close()
        }
    }

    /// The path to Kafka cut: the dev broker frozen (SIGSTOP) while the supplier streams at
    /// 2,000/s. Ingest's heartbeats stop reaching the processor: every market is suspended
    /// (heartbeat_missing). The stall is held until ingest's in-flight window (10,000 frames) is
    /// full, so it stops reading its socket, and then for twice INGEST_FEED_SILENT_MS: waiting
    /// for Kafka is not the supplier being silent, so ingest keeps its connection (no silence
    /// counted). After SIGCONT the markets reopen, and Kafka's claim follows what ingest read.
    ///
    /// (Before that was so, the silence cancelled the frame waiting for a window slot, whose
    /// resume ticket was never marked done: the claim stopped there for good, ingest reported
    /// `recovering` forever and the markets never reopened.)
    @Test("path to Kafka stalled until ingest's window is full: suspended (heartbeat_missing), no false supplier silence, reopened after the stall")
    func kafkaStalled() async throws {
        try await PipelineWorld.with(.init(rate: 2_000, generatedEvents: 16, seed: 1_403)) { world in
            let events = world.eventIds
            let broker = world.broker.process
            defer { broker.signal(SIGCONT) }
            let rig = try await OutageRig.start(world)
            do {
                try await Task.sleep(for: .seconds(2))  // the feed streams
                let stopAt = ContinuousClock.now
                broker.signal(SIGSTOP)
                _ = try await RESTStatusView.waitForAll(world, eventIds: events, "every market suspended (feed_down) in REST while Kafka is stalled",
                                                        timeout: .seconds(30)) { $0.isFeedDown }
                let overlay = try #require(try await FeedOutage.overlay(rig.redis))
                print("e2e feed liveness (Kafka stalled): suspended (\(overlay.detail ?? "-")) in REST after \(FeedOutage.seconds(ContinuousClock.now - stopAt)) (not asserted)")
                #expect(overlay.detail == "heartbeat_missing", "overlay \(overlay)")
                try await world.waitForMetrics(.ingest, "ingest's in-flight window (10,000) full while Kafka is stalled",
                                               timeout: .seconds(60), interval: .milliseconds(100)) { text in
                    MetricsText.value("odds_ingest_in_flight", in: text) >= 10_000
                }
                try await Task.sleep(for: .seconds(5))  // twice INGEST_FEED_SILENT_MS with the socket unread
                let stalled = await world.metrics(.ingest)
                print("e2e feed liveness (Kafka stalled): after \(FeedOutage.seconds(ContinuousClock.now - stopAt)) ingest holds \(Int(MetricsText.value("odds_ingest_in_flight", in: stalled))) frames in flight")
                #expect(MetricsText.value("odds_ingest_feed_silences_total", in: stalled) == 0,
                        "ingest took waiting for Kafka for supplier silence")
                broker.signal(SIGCONT)
                let contAt = ContinuousClock.now
                _ = try await RESTStatusView.waitForAll(world, eventIds: events, "no market feed_down in REST after the stall",
                                                        timeout: .seconds(60)) { !$0.isFeedDown }
                print("e2e feed liveness (Kafka stalled): reopened \(FeedOutage.seconds(ContinuousClock.now - contAt)) after SIGCONT (not asserted)")
                #expect(try await FeedOutage.overlay(rig.redis)?.state == .open)
                // Kafka's claim keeps following what ingest reads (it is not stuck where the stall began).
                let read = await world.metric(.ingest, "odds_ingest_feed_seq") ?? 0
                try await world.waitForMetrics(.ingest, "Kafka's claim reaching seq \(Int(read)), read after the stall") { text in
                    MetricsText.value("odds_ingest_kafka_complete_through_seq", in: text) >= read
                }
                let ingest = await world.metrics(.ingest)
                #expect(MetricsText.value(#"odds_ingest_feed_state{state="up"}"#, in: ingest) == 1)
                #expect(MetricsText.value("odds_ingest_feed_silences_total", in: ingest) == 0)
                // Nothing went backwards.
                let watch = await rig.watch.stop()
                #expect(watch.samples > 0 && watch.regressions.isEmpty, "store regressions (\(watch.samples) samples): \(watch.regressions)")
                let history = try await rig.historyProblems()
                #expect(history.rows > 0 && history.problems.isEmpty, "odds_history (\(history.rows) rows): \(history.problems.prefix(5))")
            } catch {
                await rig.close()
                throw error
            }
            await rig.close()
        }
    }
}
