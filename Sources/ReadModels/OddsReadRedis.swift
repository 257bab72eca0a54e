import Contracts
import Foundation
import Logging
import Redis

/// Reads the Redis read model: hash `odds:current:{event_id}` (field = market, value = OddsUpdate
/// JSON) and sorted set `odds:events` (member = event_id, score = newest updated_at in ms).
public struct RedisOddsReader: OddsReadRepository {
    public let client: RedisClient
    let logger: Logger

    public init(client: RedisClient, logger: Logger = Logger(label: "odds.read.redis")) {
        self.client = client
        self.logger = logger
    }

    public func currentOdds(eventId: String) async throws -> [OddsUpdate] {
        decode(eventId: eventId, fields: try await client.hgetall(RedisKeys.currentOdds(eventId: eventId)))
    }

    /// One pipelined round trip for all events.
    public func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        guard !eventIds.isEmpty else { return [:] }
        let commands: [[RedisArgument]] = eventIds.map { ["HGETALL", .string(RedisKeys.currentOdds(eventId: $0))] }
        let replies = try await client.pipeline(commands)
        var result: [String: [OddsUpdate]] = [:]
        for (eventId, reply) in zip(eventIds, replies) {
            result[eventId] = decode(eventId: eventId, fields: try RedisClient.hashFields(try reply.get()))
        }
        return result
    }

    public func events(limit: Int) async throws -> [EventSummary] {
        let reply = try await client.send(command: ["ZREVRANGE", .string(OddsRedisKeys.events), 0, .integer(max(0, limit - 1))])
        guard case .array(let members) = reply else {
            throw RedisError.unexpectedReply(command: "ZREVRANGE", reply: reply.description)
        }
        let eventIds = members.compactMap(\.string)
        let odds = try await currentOdds(eventIds: eventIds)
        return eventIds.compactMap { OddsReadModel.summary(eventId: $0, markets: odds[$0] ?? []) }
    }

    public func isReachable() async -> Bool {
        (try? await client.ping()) != nil
    }

    /// Values that do not decode are skipped and logged (the processor only writes valid JSON).
    func decode(eventId: String, fields: [String: [UInt8]]) -> [OddsUpdate] {
        var updates: [OddsUpdate] = []
        updates.reserveCapacity(fields.count)
        for (market, bytes) in fields {
            do {
                updates.append(try ContractCoding.decoder.decode(OddsUpdate.self, from: Data(bytes)))
            } catch {
                logger.warning("skipping undecodable odds in redis", metadata: [
                    "eventId": "\(eventId)", "market": "\(market)", "error": "\(error)",
                ])
            }
        }
        return updates.sorted { $0.market < $1.market }
    }
}
