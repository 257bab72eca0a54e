import Contracts
import Logging
import PostgresNIO

/// Writes a batch of updates into PostgreSQL in one transaction: events upserted, current odds
/// replaced only by a newer version, and each applied version appended to history once.
/// Set-based (arrays bound as parameters), so a batch costs two statements whatever its size.
public struct PostgresOddsWriter: Sendable {
    public let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// `updates` must hold at most one update per (event, market) (see `LatestPerMarket`).
    /// Returns the markets whose version won (was newer than what PostgreSQL held).
    public func apply(_ updates: [OddsUpdate]) async throws -> Set<MarketKey> {
        guard !updates.isEmpty else { return [] }
        // A consistent row order keeps concurrent writers (several processors during a
        // rebalance) from deadlocking on each other's rows.
        let sorted = updates.sorted { ($0.eventId, $0.market) < ($1.eventId, $1.market) }
        let eventIds = sorted.map(\.eventId)
        let markets = sorted.map(\.market)
        let homeTeams = sorted.map(\.homeTeam)
        let awayTeams = sorted.map(\.awayTeam)
        let odds = sorted.map { Self.oddsJSON($0.odds) }
        let statuses = sorted.map(\.status.rawValue)
        let versions = sorted.map(\.version)
        let updatedAt = sorted.map(\.updatedAt.millisecondsSinceEpoch)
        let sources = sorted.map(\.source)

        // One statement, so one round trip and one commit: data-modifying CTEs all run to
        // completion, and the foreign keys to `events` are checked at the end of the statement,
        // when the events upsert is visible. Prepared once per connection, so it is not parsed
        // and planned again for every batch.
        let statement = ApplyOddsStatement(
            eventIds: eventIds, markets: markets, homeTeams: homeTeams, awayTeams: awayTeams, odds: odds,
            statuses: statuses, versions: versions, updatedAtMillis: updatedAt, sources: sources)
        var won = Set<MarketKey>()
        for try await (eventId, market) in try await client.execute(statement, logger: logger) {
            won.insert(MarketKey(eventId: eventId, market: market))
        }
        return won
    }

    static func oddsJSON(_ odds: [String: Double]) -> String {
        var writer = JSONTextWriter(capacity: 64)
        OddsUpdate.writeOdds(odds, to: &writer)
        return writer.text
    }
}

import Foundation

/// The batch write as a named prepared statement; every value is a bound array parameter.
struct ApplyOddsStatement: PostgresPreparedStatement {
    typealias Row = (String, String)

    static let name = "odds_apply_batch_v1"
    static let sql = """
        WITH input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::text[], $6::text[], $7::int8[], $8::int8[],
                                     $9::text[])
                    AS t(event_id, market, home_team, away_team, odds, status, version, updated_ms, source)
            ),
            upserted_events AS (
                INSERT INTO events (event_id, home_team, away_team, last_update_at)
                SELECT DISTINCT ON (event_id) event_id, home_team, away_team,
                       timestamptz 'epoch' + updated_ms * interval '1 millisecond'
                FROM input
                ORDER BY event_id, updated_ms DESC
                ON CONFLICT (event_id) DO UPDATE
                    SET home_team = EXCLUDED.home_team, away_team = EXCLUDED.away_team,
                        last_update_at = greatest(events.last_update_at, EXCLUDED.last_update_at)
            ),
            applied AS (
                INSERT INTO odds_current AS c
                    (event_id, market, home_team, away_team, odds, status, version, updated_at, source, applied_at)
                SELECT event_id, market, home_team, away_team, odds::jsonb, status, version,
                       timestamptz 'epoch' + updated_ms * interval '1 millisecond', source, now()
                FROM input
                ON CONFLICT (event_id, market) DO UPDATE
                    SET home_team = EXCLUDED.home_team, away_team = EXCLUDED.away_team, odds = EXCLUDED.odds,
                        status = EXCLUDED.status, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                        source = EXCLUDED.source, applied_at = EXCLUDED.applied_at
                    WHERE c.version < EXCLUDED.version
                RETURNING event_id, market, version, odds, status, updated_at, source, applied_at
            ),
            history AS (
                INSERT INTO odds_history (event_id, market, version, odds, status, updated_at, source, applied_at)
                SELECT event_id, market, version, odds, status, updated_at, source, applied_at FROM applied
                ON CONFLICT (event_id, market, version) DO NOTHING
            )
            SELECT event_id, market FROM applied
        """

    var eventIds: [String]
    var markets: [String]
    var homeTeams: [String]
    var awayTeams: [String]
    var odds: [String]
    var statuses: [String]
    var versions: [Int64]
    var updatedAtMillis: [Int64]
    var sources: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 9)
        bindings.append(eventIds)
        bindings.append(markets)
        bindings.append(homeTeams)
        bindings.append(awayTeams)
        bindings.append(odds)
        bindings.append(statuses)
        bindings.append(versions)
        bindings.append(updatedAtMillis)
        bindings.append(sources)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}
