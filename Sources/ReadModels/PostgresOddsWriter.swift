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
        // when the events upsert is visible.
        let rows = try await client.query("""
            WITH input AS (
                SELECT * FROM unnest(\(eventIds)::text[], \(markets)::text[], \(homeTeams)::text[], \(awayTeams)::text[],
                                     \(odds)::text[], \(statuses)::text[], \(versions)::int8[], \(updatedAt)::int8[],
                                     \(sources)::text[])
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
            """, logger: logger)
        var won = Set<MarketKey>()
        for try await (eventId, market) in rows.decode((String, String).self) {
            won.insert(MarketKey(eventId: eventId, market: market))
        }
        return won
    }

    static func oddsJSON(_ odds: [String: Double]) -> String {
        let data = (try? ContractCoding.encoder.encode(odds)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

import Foundation
