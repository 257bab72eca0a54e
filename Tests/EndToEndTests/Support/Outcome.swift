import Contracts
import IntegrationSupport
import Testing

/// Everything a scenario ends with, and the checks against the journal.
struct Outcome: Sendable {
    let journal: JournalModel
    let convergence: Duration
    let postgresCurrent: [MarketKey: OddsUpdate]
    let history: [HistoryRow]
    let redis: (current: [MarketKey: OddsUpdate], problems: [String])
    let watch: (samples: Int, failedReads: Int, regressions: [String])
    let subscriber: OddsSubscriber
    let serviceMetrics: String
    let processorMetrics: String
    let ingestMetrics: String

    /// Per market, the versions in `odds_history` in insertion order.
    var historyVersions: [MarketKey: [Int64]] {
        var versions: [MarketKey: [Int64]] = [:]
        for row in history { versions[row.update.marketKey, default: []].append(row.update.version) }
        return versions
    }

    /// Per market, the versions the subscriber got as live deltas, in arrival order.
    var deliveredVersions: [MarketKey: [Int64]] {
        var versions: [MarketKey: [Int64]] = [:]
        for observation in subscriber.observations where observation.source == .delta {
            versions[observation.update.marketKey, default: []].append(observation.update.version)
        }
        return versions
    }

    var summary: String {
        "\(journal.entries.count) stream frames journaled (\(journal.accepted.count) valid per the validator, \(journal.rejected.count) invalid) "
            + "after \(journal.initial.count) initial states, \(ingestSnapshotFrames) snapshot frames published by ingest, "
            + "\(journal.newest.count) markets, \(history.count) history rows, "
            + "\(subscriber.observations.count) updates over \(subscriber.connectionCount) WebSocket connection(s), "
            + "\(watch.samples) store samples; converged \(convergence) after the feed stopped"
    }

    // MARK: - Final state (every scenario)

    /// PostgreSQL, Redis and the subscriber hold exactly the journal's newest version of every
    /// market of the catalogue, with the supplier's content; history and the subscriber's stream
    /// keep every rule they must (see each check).
    func expectFinalStateExact(catalogue: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(journal.inconsistencies.isEmpty, "supplier journal contradicts itself: \(journal.inconsistencies)",
                sourceLocation: sourceLocation)
        #expect(journal.eventIds == Set(catalogue) && journal.newest.count == catalogue.count * 3,
                "the feed did not quote every market of the catalogue: \(journal.newest.count) markets",
                sourceLocation: sourceLocation)
        Self.expectSame(postgresCurrent, journal.newest, "PostgreSQL odds_current", sourceLocation)
        #expect(redis.problems.isEmpty, "Redis read model: \(redis.problems.prefix(5))", sourceLocation: sourceLocation)
        Self.expectSame(redis.current, journal.newest, "Redis \(RedisKeys.currentOdds(eventId: "{event}"))", sourceLocation)
        Self.expectSame(subscriber.newest, journal.newest, "newest version each market reached the WebSocket subscriber with",
                        sourceLocation)
        expectHistory(sourceLocation)
        expectSubscriberStream(sourceLocation)
        #expect(watch.samples > 0 && watch.regressions.isEmpty,
                "a store went back to an older version while the pipeline ran (\(watch.samples) samples): \(watch.regressions)",
                sourceLocation: sourceLocation)
    }

    /// What the processor guarantees for `odds_history`: it collapses each batch to the newest
    /// version per market and writes a row only when that version wins the version-guarded
    /// upsert of `odds_current`, in the same statement. So, exactly:
    /// - no (event, market, version) twice;
    /// - every row is a version the supplier emitted, with the supplier's content;
    /// - per market, versions strictly increase in insertion order (a stale or replayed version
    ///   never wins, so history never goes back);
    /// - per market, the last row is the journal's newest version.
    /// It does not guarantee a row for every emitted version: versions superseded within one
    /// batch are never stored (how many depends on batch boundaries, i.e. on timing).
    func expectHistory(_ sourceLocation: SourceLocation) {
        var seen = Set<String>()
        var duplicates: [String] = []
        var foreign: [String] = []
        for row in history {
            let key = row.update.marketKey
            if !seen.insert("\(key)@\(row.update.version)").inserted { duplicates.append("\(key) v\(row.update.version)") }
            if journal.update(key, version: row.update.version) != row.update {
                foreign.append("row \(row.id) \(key) v\(row.update.version) \(row.update.odds) \(row.update.status)")
            }
        }
        #expect(duplicates.isEmpty, "odds_history holds versions twice: \(duplicates.prefix(5))", sourceLocation: sourceLocation)
        #expect(foreign.isEmpty, "odds_history rows that the supplier did not emit so: \(foreign.prefix(5))",
                sourceLocation: sourceLocation)
        let versions = historyVersions
        let unordered = versions.filter { _, list in zip(list, list.dropFirst()).contains { $0 >= $1 } }.map(\.key)
        #expect(unordered.isEmpty, "odds_history went back in version for \(unordered.prefix(5))", sourceLocation: sourceLocation)
        let lastRows = versions.compactMapValues(\.last)
        Self.expectEqualVersions(lastRows, journal.newestVersions, "newest odds_history row per market", sourceLocation)
    }

    /// What the subscriber saw, connection by connection:
    /// - no error frames, nothing undecodable;
    /// - at most one snapshot per event per connection, and exactly one on the last connection;
    /// - per market, strictly increasing versions within a connection (snapshot, then deltas);
    /// - after a reconnect with resume, the first version of a market is above every version of it
    ///   that the subscriber already had (never lower, and nothing it had is sent again);
    /// - every update carries exactly the content the supplier emitted for that version.
    func expectSubscriberStream(_ sourceLocation: SourceLocation) {
        #expect(subscriber.problems.isEmpty, "WebSocket: \(subscriber.problems.prefix(5))", sourceLocation: sourceLocation)
        let snapshots = subscriber.snapshotCounts
        let repeated = snapshots.enumerated().flatMap { index, counts in
            counts.filter { $0.value > 1 }.map { "connection \(index): \($0.value) snapshots of \($0.key)" }
        }
        #expect(repeated.isEmpty, "\(repeated.prefix(5))", sourceLocation: sourceLocation)
        #expect(snapshots.last.map { last in subscriber.eventIds.allSatisfy { last[$0] == 1 } } == true,
                "the last connection did not get one snapshot of every event: \(snapshots.last ?? [:])", sourceLocation: sourceLocation)

        var connection = 0
        var hadBefore: [MarketKey: Int64] = [:]
        var inConnection: [MarketKey: Int64] = [:]
        var regressions: [String] = []
        var corrupted: [String] = []
        for observation in subscriber.observations {
            if observation.connection != connection {
                hadBefore.merge(inConnection) { max($0, $1) }
                inConnection = [:]
                connection = observation.connection
            }
            let update = observation.update
            let key = update.marketKey
            if let last = inConnection[key], update.version <= last {
                regressions.append("connection \(connection) \(observation.source) \(key): v\(update.version) after v\(last)")
            } else if inConnection[key] == nil, let had = hadBefore[key], update.version <= had {
                regressions.append("connection \(connection) resumed \(key) with \(observation.source) v\(update.version), had v\(had)")
            }
            inConnection[key] = max(update.version, inConnection[key] ?? 0)
            if journal.update(key, version: update.version) != update {
                corrupted.append("\(observation.source) \(key) v\(update.version)")
            }
        }
        #expect(regressions.isEmpty, "WebSocket versions not strictly increasing: \(regressions.prefix(5))",
                sourceLocation: sourceLocation)
        #expect(corrupted.isEmpty, "WebSocket updates unlike what the supplier emitted: \(corrupted.prefix(5))",
                sourceLocation: sourceLocation)
    }

    // MARK: - Steady state (no crashes)

    /// "Nothing valid lost" for a subscriber. The processor collapses each batch to the newest
    /// version per market, so versions superseded inside a batch never become "applied" and
    /// cannot be delivered by anyone; and a slow WebSocket client gets conflated updates by
    /// design. So "lost" here means: a version the pipeline applied (it is in `odds_history`;
    /// without crashes exactly those versions win the Redis compare-and-set and are published)
    /// after the subscriber's (empty) snapshots, that never reached the subscriber. With
    /// conflation counted as zero (our subscriber reads as fast as it can, and odds-service runs
    /// with a deep queue), every applied version must arrive, once, in order: the delta stream of
    /// each market equals its history.
    func expectEveryAppliedVersionDelivered(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(subscriber.connectionCount == 1, "the subscriber had to reconnect", sourceLocation: sourceLocation)
        let snapshotted = subscriber.observations.filter { $0.source == .snapshot }
        #expect(snapshotted.isEmpty, "snapshots were taken before the feed started, yet held \(snapshotted.count) markets",
                sourceLocation: sourceLocation)
        #expect(serviceMetrics.contains("odds_ws_frames_sent_total"), "odds-service metrics unavailable", sourceLocation: sourceLocation)
        #expect(MetricsText.value("odds_ws_conflated_total", in: serviceMetrics) == 0,
                "odds-service conflated updates for the subscriber", sourceLocation: sourceLocation)
        #expect(MetricsText.value("odds_ws_slow_closes_total", in: serviceMetrics) == 0, sourceLocation: sourceLocation)
        #expect(MetricsText.value("odds_ws_resyncs_total", in: serviceMetrics) == 0, sourceLocation: sourceLocation)

        let applied = historyVersions
        let delivered = deliveredVersions
        var lost: [String] = []
        var unexpected: [String] = []
        for key in Set(applied.keys).union(delivered.keys) {
            let want = applied[key] ?? []
            let got = delivered[key] ?? []
            guard want != got else { continue }
            let missing = Set(want).subtracting(got)
            if !missing.isEmpty { lost.append("\(key): \(missing.count) of \(want.count) applied versions, e.g. v\(missing.min()!)") }
            if Set(got).subtracting(want).count > 0 || missing.isEmpty { unexpected.append("\(key): delivered \(got.count), applied \(want.count)") }
        }
        #expect(lost.isEmpty, "applied versions that never reached the subscriber: \(lost.sorted().prefix(5))",
                sourceLocation: sourceLocation)
        #expect(unexpected.isEmpty, "delivered versions that were not applied (or out of order): \(unexpected.sorted().prefix(5))",
                sourceLocation: sourceLocation)
    }

    /// Markets ingest published from supplier snapshots (odds_ingest_snapshot_frames_total).
    var ingestSnapshotFrames: Int { Int(MetricsText.value("odds_ingest_snapshot_frames_total", in: ingestMetrics)) }

    /// Without restarts the processor's counters cover the whole run: ingest took one snapshot
    /// (its first start: every market's starting state) and then every valid frame went through
    /// Kafka once (consumed = markets + valid frames in the journal), and each was either
    /// collapsed within its batch, dropped as stale, or applied, once per history row.
    func expectProcessorAccounting(sourceLocation: SourceLocation = #_sourceLocation) {
        let metric = { (name: String) in Int(MetricsText.value(name, in: processorMetrics)) }
        let consumed = metric("odds_processor_consumed_total")
        let applied = metric("odds_processor_applied_total")
        let stale = metric("odds_processor_stale_total")
        let collapsed = metric("odds_processor_collapsed_total")
        #expect(ingestSnapshotFrames == journal.initial.count,
                "ingest published \(ingestSnapshotFrames) snapshot frames, one snapshot has \(journal.initial.count) markets",
                sourceLocation: sourceLocation)
        #expect(consumed == journal.accepted.count + ingestSnapshotFrames,
                "processor consumed \(consumed) messages, the journal has \(journal.accepted.count) valid frames (+ \(ingestSnapshotFrames) snapshot frames)",
                sourceLocation: sourceLocation)
        #expect(applied == history.count, "processor applied \(applied), odds_history has \(history.count) rows",
                sourceLocation: sourceLocation)
        #expect(applied + stale + collapsed == consumed,
                "applied \(applied) + stale \(stale) + collapsed \(collapsed) != consumed \(consumed)", sourceLocation: sourceLocation)
        #expect(MetricsText.value(#"odds_dlq_total{stage="processor"}"#, in: processorMetrics) == 0,
                "the processor dead-lettered messages ingest had validated", sourceLocation: sourceLocation)
    }

    // MARK: - Helpers

    static func expectSame(_ actual: [MarketKey: OddsUpdate], _ expected: [MarketKey: OddsUpdate], _ what: String,
                           _ sourceLocation: SourceLocation) {
        let missing = expected.keys.filter { actual[$0] == nil }
        let extra = actual.keys.filter { expected[$0] == nil }
        let different = expected.compactMap { key, want -> String? in
            guard let have = actual[key], have != want else { return nil }
            return "\(key): v\(have.version) \(have.odds) \(have.status) instead of v\(want.version) \(want.odds) \(want.status)"
        }
        #expect(missing.isEmpty && extra.isEmpty && different.isEmpty, """
            \(what) differs from the journal's newest versions: \(missing.count) markets missing \(missing.prefix(3)), \
            \(extra.count) unexpected \(extra.prefix(3)), \(different.count) different \(different.prefix(3))
            """, sourceLocation: sourceLocation)
    }

    static func expectEqualVersions(_ actual: [MarketKey: Int64], _ expected: [MarketKey: Int64], _ what: String,
                                    _ sourceLocation: SourceLocation) {
        let wrong = Set(actual.keys).union(expected.keys).filter { actual[$0] != expected[$0] }
            .map { "\($0): \(actual[$0].map(String.init) ?? "none") instead of \(expected[$0].map(String.init) ?? "none")" }
        #expect(wrong.isEmpty, "\(what) differs from the journal for \(wrong.count) markets: \(wrong.sorted().prefix(5))",
                sourceLocation: sourceLocation)
    }
}
