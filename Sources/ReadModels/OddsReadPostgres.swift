import Contracts
import Foundation
import Logging
import PostgresNIO

/// Reads the PostgreSQL read models (`events`, `odds_current`, `odds_history`). Every statement
/// binds its values (PostgresQuery interpolation); times are read as integer milliseconds so
/// they round-trip exactly into `Timestamp`.
public struct PostgresOddsReadRepository: OddsReadRepository, OddsHistoryRepository {
    public let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger = Logger(label: "odds.read.postgres")) {
        self.client = client
        self.logger = logger
    }

    public func currentOdds(eventId: String) async throws -> [OddsUpdate] {
        try await currentOdds(eventIds: [eventId])[eventId] ?? []
    }

    public func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        guard !eventIds.isEmpty else { return [:] }
        let rows = try await client.query("""
            SELECT event_id, market, home_team, away_team, odds::text, status, version,
                   floor(extract(epoch FROM updated_at) * 1000)::int8, source
            FROM odds_current
            WHERE event_id = ANY(\(eventIds)::text[])
            ORDER BY event_id, market
            """, logger: logger)
        var result: [String: [OddsUpdate]] = [:]
        for eventId in eventIds { result[eventId] = [] }
        for try await (eventId, market, home, away, oddsText, status, version, updatedMs, source)
            in rows.decode((String, String, String, String, String, String, Int64, Int64, String).self) {
            result[eventId, default: []].append(OddsUpdate(
                eventId: eventId, homeTeam: home, awayTeam: away, market: market,
                odds: try Self.decodeOdds(oddsText), status: MarketStatus(rawValue: status) ?? .open,
                updatedAt: Timestamp(millisecondsSinceEpoch: updatedMs), source: source, version: version))
        }
        return result
    }

    public func events(limit: Int) async throws -> [EventSummary] {
        let rows = try await client.query("""
            SELECT e.event_id, e.home_team, e.away_team,
                   floor(extract(epoch FROM e.last_update_at) * 1000)::int8,
                   coalesce(array_agg(c.market ORDER BY c.market) FILTER (WHERE c.market IS NOT NULL), '{}')::text[],
                   coalesce(array_agg(DISTINCT c.source) FILTER (WHERE c.source IS NOT NULL), '{}')::text[]
            FROM events e LEFT JOIN odds_current c ON c.event_id = e.event_id
            GROUP BY e.event_id
            ORDER BY e.last_update_at DESC, e.event_id
            LIMIT \(limit)
            """, logger: logger)
        var events: [EventSummary] = []
        for try await (eventId, home, away, lastMs, markets, sources)
            in rows.decode((String, String, String, Int64, [String], [String]).self) {
            events.append(EventSummary(eventId: eventId, homeTeam: home, awayTeam: away, markets: markets,
                                       lastUpdate: Timestamp(millisecondsSinceEpoch: lastMs), sources: sources))
        }
        return events
    }

    /// One round trip: zero rows = unknown event; one row of NULLs = known event, no history.
    public func history(eventId: String, market: String, limit: Int) async throws -> [HistoryEntry]? {
        let rows = try await client.query("""
            SELECT h.version, h.odds, h.status, h.updated_ms, h.applied_ms
            FROM events e
            LEFT JOIN LATERAL (
                SELECT version, odds::text AS odds, status,
                       floor(extract(epoch FROM updated_at) * 1000)::int8 AS updated_ms,
                       floor(extract(epoch FROM applied_at) * 1000)::int8 AS applied_ms
                FROM odds_history
                WHERE event_id = e.event_id AND market = \(market)
                ORDER BY version DESC
                LIMIT \(limit)
            ) h ON true
            WHERE e.event_id = \(eventId)
            """, logger: logger)
        var known = false
        var entries: [HistoryEntry] = []
        for try await (version, oddsText, status, updatedMs, appliedMs)
            in rows.decode((Int64?, String?, String?, Int64?, Int64?).self) {
            known = true
            guard let version, let oddsText, let status, let updatedMs, let appliedMs else { continue }
            entries.append(HistoryEntry(
                version: version, odds: try Self.decodeOdds(oddsText), status: MarketStatus(rawValue: status) ?? .open,
                updatedAt: Timestamp(millisecondsSinceEpoch: updatedMs),
                appliedAt: Timestamp(millisecondsSinceEpoch: appliedMs)))
        }
        return known ? entries : nil
    }

    public func isReachable() async -> Bool {
        do {
            let rows = try await client.query("SELECT 1::int4", logger: logger)
            for try await _ in rows.decode(Int32.self) {}
            return true
        } catch {
            return false
        }
    }

    static func decodeOdds(_ text: String) throws -> [String: Double] {
        try ContractCoding.decoder.decode([String: Double].self, from: Data(text.utf8))
    }
}
