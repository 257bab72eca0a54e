import Contracts

/// The read side of the odds read models, as odds-service needs it. Implemented over PostgreSQL
/// (`PostgresOddsReadRepository`) and Redis (`RedisOddsReader`); odds-service combines the two
/// (Redis first, PostgreSQL as fallback, never older than Redis).
public protocol OddsReadRepository: Sendable {
    /// Current odds of every market of one event (one `OddsUpdate` per market, the latest
    /// applied version). Empty when the store does not know the event.
    func currentOdds(eventId: String) async throws -> [OddsUpdate]

    /// Current odds of several events at once (used to build snapshots and re-syncs).
    /// Events the store does not know map to an empty array.
    func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]]

    /// Events ordered by their newest update, newest first, at most `limit`.
    func events(limit: Int) async throws -> [EventSummary]

    /// Whether the store answers at all (readiness).
    func isReachable() async -> Bool
}

/// History lives in PostgreSQL only (Redis keeps the current version per market).
public protocol OddsHistoryRepository: Sendable {
    /// Applied versions of one market of one event, newest first, at most `limit`.
    /// Nil when the event is unknown.
    func history(eventId: String, market: String, limit: Int) async throws -> [HistoryEntry]?
}

extension OddsReadRepository {
    public func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        var result: [String: [OddsUpdate]] = [:]
        for eventId in eventIds { result[eventId] = try await currentOdds(eventId: eventId) }
        return result
    }
}

/// Turns the current odds of one event into the event summary of `GET /v1/events`.
public enum OddsReadModel {
    /// Nil for an empty market list. Teams come from the newest update of the event. The
    /// summary's effective status is `open` until the caller applies the feed overlay.
    public static func summary(eventId: String, markets: [OddsUpdate]) -> EventSummary? {
        guard let newest = markets.max(by: { $0.updatedAt < $1.updatedAt }) else { return nil }
        return EventSummary(eventId: eventId, homeTeam: newest.homeTeam, awayTeam: newest.awayTeam,
                            markets: markets.map(\.market).sorted(), lastUpdate: newest.updatedAt,
                            sources: Array(Set(markets.map(\.source))).sorted())
    }

    /// Per market, the newer version of the two sources (ties keep `primary`). Sorted by market.
    public static func newestPerMarket(_ primary: [OddsUpdate], _ secondary: [OddsUpdate]) -> [OddsUpdate] {
        var byMarket: [String: OddsUpdate] = [:]
        for update in primary { byMarket[update.market] = update }
        for update in secondary {
            if let existing = byMarket[update.market], existing.version >= update.version { continue }
            byMarket[update.market] = update
        }
        return byMarket.values.sorted { $0.market < $1.market }
    }
}
