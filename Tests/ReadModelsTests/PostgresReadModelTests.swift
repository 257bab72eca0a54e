import Contracts
import IntegrationSupport
import ReadModels
import Testing

/// PostgresOddsWriter and PostgresOddsReadRepository against the real PostgreSQL, each test on
/// its own migrated scratch database.
@Suite("PostgreSQL read model", .timeLimit(.minutes(2)))
struct PostgresReadModelTests {
    typealias U = ReadModelTest

    @Test func upsertChangesTheRowOnlyForANewerVersion() async throws {
        try await PostgresReadModels.with { pg async throws in
            let event = TestInfrastructure.uniqueName("PGUP")
            let key = MarketKey(eventId: event, market: "1x2")
            let v5 = U.update(event, version: 5, price: 2.1)

            #expect(try await pg.writer.apply([v5]) == [key])
            #expect(try await pg.reader.currentOdds(eventId: event) == [v5])

            // Older and duplicate versions (with other prices, status and teams) lose.
            let older = U.update(event, version: 3, price: 9.9, status: .suspended, home: "Older")
            let duplicate = U.update(event, version: 5, price: 7.7, status: .suspended, home: "Duplicate")
            #expect(try await pg.writer.apply([older]).isEmpty)
            #expect(try await pg.writer.apply([duplicate]).isEmpty)
            #expect(try await pg.reader.currentOdds(eventId: event) == [v5])

            let v6 = U.update(event, version: 6, price: 1.95, status: .suspended)
            #expect(try await pg.writer.apply([v6]) == [key])
            #expect(try await pg.reader.currentOdds(eventId: event) == [v6])
            // Only applied versions reach history.
            #expect(try await pg.historyRows([event]) == ["\(event)/1x2/5", "\(event)/1x2/6"])
        }
    }

    @Test func historyHoldsEachVersionOnceWhenTheSameBatchIsWrittenTwice() async throws {
        try await PostgresReadModels.with { pg async throws in
            let events = [TestInfrastructure.uniqueName("PGH"), TestInfrastructure.uniqueName("PGH")]
            let markets = ["1x2", "btts", "ou_2_5"]
            func batch(_ version: Int64) -> [OddsUpdate] {
                events.flatMap { event in markets.map { U.update(event, $0, version: version) } }
            }
            let allKeys = Set(batch(1).map(\.marketKey))

            #expect(try await pg.writer.apply(batch(1)) == allKeys)
            #expect(try await pg.writer.apply(batch(1)).isEmpty)
            #expect(try await pg.writer.apply(batch(2)) == allKeys)
            #expect(try await pg.writer.apply(batch(2)).isEmpty)
            #expect(try await pg.writer.apply(batch(1)).isEmpty)

            let expected = events.flatMap { event in
                markets.flatMap { market in ["\(event)/\(market)/1", "\(event)/\(market)/2"] }
            }.sorted()
            #expect(try await pg.historyRows(events) == expected)
            for event in events {
                #expect(try await pg.reader.currentOdds(eventId: event).map(\.version) == [2, 2, 2])
            }
        }
    }

    @Test func collapsedBatchWritesTheNewestVersionOfEachMarket() async throws {
        try await PostgresReadModels.with { pg async throws in
            let event = TestInfrastructure.uniqueName("PGC")
            let arrived = [
                U.update(event, "1x2", version: 1, price: 2.01), U.update(event, "1x2", version: 3, price: 2.03),
                U.update(event, "btts", version: 2, price: 1.52), U.update(event, "1x2", version: 2, price: 2.02),
                U.update(event, "btts", version: 1, price: 1.51),
            ]
            let collapsed = LatestPerMarket(arrived).updates
            #expect(collapsed.map(\.version) == [3, 2])

            #expect(try await pg.writer.apply(collapsed) == Set(collapsed.map(\.marketKey)))
            #expect(try await pg.reader.currentOdds(eventId: event) == [arrived[1], arrived[2]])
            #expect(try await pg.historyRows([event]) == ["\(event)/1x2/3", "\(event)/btts/2"])
        }
    }

    @Test func concurrentWritersLeaveTheHighestVersionAndNoDuplicateHistory() async throws {
        try await PostgresReadModels.with { pg async throws in
            let events = (0..<3).map { _ in TestInfrastructure.uniqueName("PGW") }
            let markets = ["1x2", "btts"]
            // Four writers, each with its own interleaving of versions 1...20 (a rebalance or
            // replay racing the live processor); batches cover every market of every event.
            let won = try await withThrowingTaskGroup(of: [MarketKey: [Int64]].self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var won: [MarketKey: [Int64]] = [:]
                        for step in 0..<20 {
                            let version = Int64((step * 7 + writer * 5) % 20 + 1)
                            let batch = events.reversed().flatMap { event in markets.map { U.update(event, $0, version: version) } }
                            for key in try await pg.writer.apply(batch) { won[key, default: []].append(version) }
                        }
                        return won
                    }
                }
                var all: [MarketKey: [Int64]] = [:]
                for try await partial in group { all.merge(partial) { $0 + $1 } }
                return all
            }

            for event in events {
                #expect(try await pg.reader.currentOdds(eventId: event).map(\.version) == [20, 20])
            }
            // Exactly the versions that won are in history, each once, 20 among them.
            let expected = won.flatMap { key, versions in versions.map { "\(key.eventId)/\(key.market)/\($0)" } }
            #expect(try await pg.historyRows(events) == expected.sorted())
            #expect(won.count == events.count * markets.count)
            #expect(won.values.allSatisfy { $0.contains(20) && Set($0).count == $0.count })
        }
    }

    @Test func readerReturnsEventsMarketsCurrentOddsAndHistory() async throws {
        try await PostgresReadModels.with { pg async throws in
            let early = TestInfrastructure.uniqueName("PGR")
            let late = TestInfrastructure.uniqueName("PGR")
            let unknown = TestInfrastructure.uniqueName("PGR")
            for version in Int64(1)...5 {
                _ = try await pg.writer.apply([
                    U.update(early, "1x2", version: version, price: Double(200 + version) / 100),
                    U.update(early, "btts", version: version, price: 1.5, status: version == 5 ? .suspended : .open),
                ])
            }
            let lateOdds = U.update(late, "ou_2_5", version: 1, updatedAtMs: 1_790_000_900_000, home: "Bahia", away: "Vitoria")
            _ = try await pg.writer.apply([lateOdds])

            let summaries = try await pg.reader.events(limit: 10)
            #expect(summaries == [
                EventSummary(eventId: late, homeTeam: "Bahia", awayTeam: "Vitoria", markets: ["ou_2_5"],
                             lastUpdate: lateOdds.updatedAt, sources: [U.source]),
                EventSummary(eventId: early, homeTeam: "Santos", awayTeam: "Gremio", markets: ["1x2", "btts"],
                             lastUpdate: Timestamp(millisecondsSinceEpoch: 1_790_000_005_000), sources: [U.source]),
            ])
            #expect(try await pg.reader.events(limit: 1).map(\.eventId) == [late])

            let current = try await pg.reader.currentOdds(eventId: early)
            #expect(current == [U.update(early, "1x2", version: 5, price: 2.05),
                                U.update(early, "btts", version: 5, price: 1.5, status: .suspended)])
            let several = try await pg.reader.currentOdds(eventIds: [early, late, unknown])
            #expect(several == [early: current, late: [lateOdds], unknown: []])
            #expect(try await pg.reader.currentOdds(eventId: unknown).isEmpty)

            let newestTwo = try #require(try await pg.reader.history(eventId: early, market: "1x2", limit: 2))
            #expect(newestTwo.map(\.version) == [5, 4])
            #expect(newestTwo.map(\.odds) == [U.update(early, version: 5, price: 2.05).odds,
                                               U.update(early, version: 4, price: 2.04).odds])
            #expect(newestTwo.map(\.updatedAt) == [U.update(early, version: 5).updatedAt, U.update(early, version: 4).updatedAt])
            let btts = try #require(try await pg.reader.history(eventId: early, market: "btts", limit: 100))
            #expect(btts.map(\.version) == [5, 4, 3, 2, 1])
            #expect(btts.map(\.status) == [.suspended, .open, .open, .open, .open])
            // Known event, market without history: empty; unknown event: nil ("not found").
            #expect(try await pg.reader.history(eventId: early, market: "ou_2_5", limit: 10) == [])
            #expect(try await pg.reader.history(eventId: unknown, market: "1x2", limit: 10) == nil)
            #expect(await pg.reader.isReachable())
        }
    }
}
