import Contracts
import Foundation
import IntegrationSupport
import Logging
import PostgresNIO
import Redis

/// One row of `odds_history`, in insertion (`id`) order.
struct HistoryRow: Sendable {
    let id: Int64
    let update: OddsUpdate
}

/// Reads the two read models back exactly as the processor wrote them.
struct ReadModelReader: Sendable {
    let database: ScratchDatabase
    let redis: RedisClient
    let eventIds: [String]
    let logger = Logger(label: "e2e.read-models")

    /// `odds_current`: one OddsUpdate per (event, market).
    func postgresCurrent() async throws -> [MarketKey: OddsUpdate] {
        let rows = try await database.withConnection { connection in
            var rows: [OddsUpdate] = []
            let result = try await connection.query("""
                SELECT event_id, market, home_team, away_team, odds::text, status, version,
                       (extract(epoch FROM updated_at) * 1000)::int8, source
                FROM odds_current
                """, logger: logger)
            for try await (event, market, home, away, odds, status, version, updatedMs, source)
                in result.decode((String, String, String, String, String, String, Int64, Int64, String).self) {
                rows.append(try Self.update(event, market, home, away, odds, status, version, updatedMs, source))
            }
            return rows
        }
        return Dictionary(rows.map { ($0.marketKey, $0) }) { first, _ in first }
    }

    /// `odds_history` in insertion order. Teams are not stored in history; they are taken from
    /// `teams` (the journal's) so rows compare whole with the supplier's updates.
    func postgresHistory(teams: [String: (home: String, away: String)]) async throws -> [HistoryRow] {
        try await database.withConnection { connection in
            var rows: [HistoryRow] = []
            let result = try await connection.query("""
                SELECT id, event_id, market, odds::text, status, version,
                       (extract(epoch FROM updated_at) * 1000)::int8, source
                FROM odds_history ORDER BY id
                """, logger: logger)
            for try await (id, event, market, odds, status, version, updatedMs, source)
                in result.decode((Int64, String, String, String, String, Int64, Int64, String).self) {
                let team = teams[event] ?? ("?", "?")
                rows.append(HistoryRow(id: id, update: try Self.update(
                    event, market, team.home, team.away, odds, status, version, updatedMs, source)))
            }
            return rows
        }
    }

    /// The `odds:current:{event}` hashes of every catalogue event. A value that is not a valid
    /// OddsUpdate, or stored under a field other than its market, is reported in `problems`.
    func redisCurrent() async throws -> (current: [MarketKey: OddsUpdate], problems: [String]) {
        var current: [MarketKey: OddsUpdate] = [:]
        var problems: [String] = []
        for event in eventIds {
            for (field, json) in try await redis.hgetall(RedisKeys.currentOdds(eventId: event)) {
                switch OddsUpdateValidator.validate(json) {
                case .success(let update) where update.eventId == event && update.market == field:
                    current[update.marketKey] = update
                case .success(let update):
                    problems.append("\(event)/\(field) holds \(update.marketKey)")
                case .failure(let reason):
                    problems.append("\(event)/\(field) is not a valid OddsUpdate: \(reason)")
                }
            }
        }
        return (current, problems)
    }

    private static func update(
        _ event: String, _ market: String, _ home: String, _ away: String, _ odds: String, _ status: String,
        _ version: Int64, _ updatedMs: Int64, _ source: String
    ) throws -> OddsUpdate {
        guard let status = MarketStatus(rawValue: status) else { throw TestFailure("\(event)/\(market): status \(status)") }
        return OddsUpdate(eventId: event, homeTeam: home, awayTeam: away, market: market,
                   odds: try JSONDecoder().decode([String: Double].self, from: Data(odds.utf8)), status: status,
                   updatedAt: Timestamp(millisecondsSinceEpoch: updatedMs), source: source, version: version)
    }
}
