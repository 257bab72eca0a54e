import Contracts
import Logging
import ReadModels

/// The read rules shared by REST and WebSocket snapshots: Redis first; PostgreSQL when Redis
/// fails or does not know the event. When both are consulted, per market the newer version wins,
/// so an answer is never older than what Redis holds. With a mirror, current odds of an event
/// it holds come from memory (the Redis hash as the broadcast channel keeps it; see
/// `LiveOddsMirror` for when it answers), and every Redis read of current odds refreshes it.
struct OddsQueryService: Sendable {
    let redis: any OddsReadRepository
    let postgres: any OddsReadRepository
    let history: any OddsHistoryRepository
    let mirror: LiveOddsMirror?
    let metrics: ServiceMetrics
    let logger: Logger

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    /// Current odds of an event, one entry per market sorted by market; empty for an unknown event.
    func currentOdds(eventId: String) async throws -> [OddsUpdate] {
        if let held = mirror?.current(eventId) {
            metrics.mirrorRead(hit: true)
            return held
        }
        if mirror != nil { metrics.mirrorRead(hit: false) }
        let load = mirror?.beginLoad(eventId)
        let fromRedis: [OddsUpdate]
        do {
            fromRedis = try await redis.currentOdds(eventId: eventId)
            if let load { mirror?.finishLoad(load, with: fromRedis) }
        } catch {
            if let load { mirror?.cancelLoad(load) }
            metrics.fallback("redis_error")
            logger.debug("redis read failed; reading postgres", metadata: ["error": "\(error)"])
            return try await postgresOdds(eventId: eventId, redisError: error)
        }
        if !fromRedis.isEmpty { return fromRedis }
        metrics.fallback("redis_miss")
        return OddsReadModel.newestPerMarket(fromRedis, try await postgresOdds(eventId: eventId, redisError: nil))
    }

    /// Batch form (snapshots of a multi-event subscribe, re-syncs): one Redis pipeline, then
    /// PostgreSQL only for the events Redis does not know (or all of them if Redis fails).
    func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        guard !eventIds.isEmpty else { return [:] }
        var result: [String: [OddsUpdate]] = [:]
        var toRead = eventIds
        if let mirror {
            toRead = []
            for eventId in eventIds {
                if let held = mirror.current(eventId) { result[eventId] = held } else { toRead.append(eventId) }
            }
            metrics.mirrorRead(hit: true, count: eventIds.count - toRead.count)
            metrics.mirrorRead(hit: false, count: toRead.count)
        }
        guard !toRead.isEmpty else { return result }
        var missing = toRead
        let loads = toRead.compactMap { mirror?.beginLoad($0) }
        do {
            let fromRedis = try await redis.currentOdds(eventIds: toRead)
            for load in loads { mirror?.finishLoad(load, with: fromRedis[load.eventId] ?? []) }
            result.merge(fromRedis) { _, read in read }
            missing = toRead.filter { (result[$0] ?? []).isEmpty }
            if !missing.isEmpty { metrics.fallback("redis_miss") }
        } catch {
            for load in loads { mirror?.cancelLoad(load) }
            metrics.fallback("redis_error")
            logger.debug("redis batch read failed; reading postgres", metadata: ["error": "\(error)"])
        }
        guard !missing.isEmpty else { return result }
        do {
            let fromPostgres = try await postgres.currentOdds(eventIds: missing)
            for eventId in missing {
                result[eventId] = OddsReadModel.newestPerMarket(result[eventId] ?? [], fromPostgres[eventId] ?? [])
            }
        } catch {
            if result.isEmpty { throw Unavailable(description: "redis and postgres unavailable: \(error)") }
            logger.debug("postgres read failed", metadata: ["error": "\(error)"])
        }
        return result
    }

    func events(limit: Int) async throws -> [EventSummary] {
        do {
            let fromRedis = try await redis.events(limit: limit)
            if !fromRedis.isEmpty { return fromRedis }
            metrics.fallback("redis_miss")
        } catch {
            metrics.fallback("redis_error")
            logger.debug("redis events read failed; reading postgres", metadata: ["error": "\(error)"])
        }
        do {
            return try await postgres.events(limit: limit)
        } catch {
            throw Unavailable(description: "events unavailable: \(error)")
        }
    }

    /// Nil for an unknown event (unknown to PostgreSQL and Redis).
    func history(eventId: String, market: String, limit: Int) async throws -> [HistoryEntry]? {
        let entries: [HistoryEntry]?
        do {
            entries = try await history.history(eventId: eventId, market: market, limit: limit)
        } catch {
            throw Unavailable(description: "history unavailable: \(error)")
        }
        if let entries { return entries }
        // PostgreSQL does not know the event yet; Redis may (it is the first read model).
        if let known = try? await redis.currentOdds(eventId: eventId), !known.isEmpty { return [] }
        return nil
    }

    private func postgresOdds(eventId: String, redisError: (any Error)?) async throws -> [OddsUpdate] {
        do {
            return try await postgres.currentOdds(eventId: eventId)
        } catch {
            if let redisError { throw Unavailable(description: "redis: \(redisError); postgres: \(error)") }
            throw Unavailable(description: "postgres: \(error)")
        }
    }
}
