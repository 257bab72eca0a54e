import Contracts
import Foundation
import IntegrationSupport
import Redis
import Synchronization
import Testing

/// The common course of a scenario: read side first (processor, odds-service, a subscriber of
/// every event that has its empty snapshots before the first update exists, a watch on the
/// stores), then the feed (supplier, ingest). Ingest reads Kafka's newest messages before it
/// connects (odds-feed/2 resume); on its first start Kafka holds no position, so it asks for a
/// snapshot: every market's starting state (the journal's `initial` lines, as the supplier does
/// not move while nobody listens) goes through the pipeline before the first stream frame. At
/// the end the supplier stops gracefully (it hands ingest everything it journaled and flushes
/// the journal), and the read models must converge to the journal.
final class PipelineRun: Sendable {
    let world: PipelineWorld
    let redis: RedisClient
    let reader: ReadModelReader
    let subscriber: OddsSubscriber
    let watch: StoreWatch
    private let closed = Mutex(false)

    private init(world: PipelineWorld, redis: RedisClient, subscriber: OddsSubscriber, watch: StoreWatch, reader: ReadModelReader) {
        self.world = world
        self.redis = redis
        self.subscriber = subscriber
        self.watch = watch
        self.reader = reader
    }

    /// Starts everything (`begin`), runs `feeding` while the feed runs, and ends with `finish`
    /// (`settled` runs once the read models converged, before they are read back).
    /// `journal` turns the final supplier's journal into the model the outcome is checked
    /// against (e.g. adding what an earlier, killed supplier emitted).
    static func outcome(
        _ world: PipelineWorld,
        feeding: (PipelineRun) async throws -> Void,
        settled: (PipelineRun) async throws -> Void = { _ in },
        journal: (JournalModel) async throws -> JournalModel = { $0 }
    ) async throws -> Outcome {
        let run = try await begin(world)
        do {
            try await feeding(run)
            return try await run.finish(settled: settled, journal: journal)
        } catch {
            await run.close()
            throw error
        }
    }

    /// Starts everything; the feed runs from the moment this returns.
    private static func begin(_ world: PipelineWorld) async throws -> PipelineRun {
        try await world.start(.processor)
        try await world.start(.service)
        let redis = try RedisClient(address: world.redis.address)
        let subscriber = OddsSubscriber.start(
            url: world.serviceWebSocketURL, readyURL: world.metricsURL(.service, "/readyz"), eventIds: world.eventIds)
        let reader = ReadModelReader(database: world.database, redis: redis, eventIds: world.eventIds)
        let run = PipelineRun(world: world, redis: redis, subscriber: subscriber, watch: StoreWatch.start(reader), reader: reader)
        do {
            let subscribed = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) { subscriber.hasAllSnapshots(connection: 0) }
            guard subscribed else { throw TestFailure("no snapshots from odds-service: \(subscriber.problems)\n\(world.diagnostics())") }
            try await world.start(.supplier)
            try await world.start(.ingest)
            // Ingest connects only once Kafka answered its resume question: the feed (which
            // does not move while nobody listens) starts with the supplier's hello.
            try await world.waitForMetrics(.ingest, "ingest's first answer from the supplier (hello)") {
                MetricsText.sum(prefix: "odds_ingest_feed_starts_total{", in: $0) >= 1
            }
        } catch {
            await run.close()
            throw error
        }
        return run
    }

    /// Stops the feed gracefully, waits (polling, at most `timeout`) until PostgreSQL, Redis and
    /// the subscriber all hold the journal's newest version of every market, then reads
    /// everything back.
    private func finish(timeout: Duration = .seconds(60), settled: (PipelineRun) async throws -> Void,
                        journal model: (JournalModel) async throws -> JournalModel) async throws -> Outcome {
        let supplierStatus = await world.stop(.supplier)
        #expect(supplierStatus == 0, "supplier-simulator did not shut down cleanly: \(world.diagnostics())")
        let journal = try await model(JournalModel(path: world.journalPath))
        let expected = journal.newestVersions
        var lagging = ""
        let started = ContinuousClock.now
        let converged = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(250)) {
            let postgres = try await self.reader.postgresCurrent().mapValues(\.version)
            let redis = try await self.reader.redisCurrent().current.mapValues(\.version)
            let subscriber = self.subscriber.newestVersions
            lagging = "postgres \(Self.behind(postgres, expected)), redis \(Self.behind(redis, expected)), "
                + "websocket \(Self.behind(subscriber, expected)) of \(expected.count) markets behind the journal"
            return postgres == expected && redis == expected && subscriber == expected
        }
        let convergence = ContinuousClock.now - started
        if !converged {
            Issue.record("no convergence within \(timeout): \(lagging)\n\(world.diagnostics())")
        }
        try await settled(self)
        let outcome = Outcome(
            journal: journal,
            convergence: convergence,
            postgresCurrent: try await reader.postgresCurrent(),
            history: try await reader.postgresHistory(teams: journal.teams),
            redis: try await reader.redisCurrent(),
            watch: await watch.stop(),
            subscriber: subscriber,
            serviceMetrics: await world.metrics(.service),
            processorMetrics: await world.metrics(.processor),
            ingestMetrics: await world.metrics(.ingest))
        await close()
        return outcome
    }

    /// Stops the subscriber, the watch and the Redis client (once; safe to call again).
    func close() async {
        guard closed.withLock({ closed in defer { closed = true }; return !closed }) else { return }
        _ = await watch.stop()
        await subscriber.stop()
        await redis.shutdown()
    }

    /// How many markets of `expected` `actual` does not hold at that version.
    static func behind(_ actual: [MarketKey: Int64], _ expected: [MarketKey: Int64]) -> Int {
        expected.filter { actual[$0.key] != $0.value }.count + actual.keys.filter { expected[$0] == nil }.count
    }
}

extension JournalModel {
    /// Teams per event (history rows do not store them).
    var teams: [String: (home: String, away: String)] {
        var teams: [String: (home: String, away: String)] = [:]
        for update in newest.values { teams[update.eventId] = (update.homeTeam, update.awayTeam) }
        return teams
    }
}
