import Contracts
import Foundation
import Logging
import Redis

/// Redis keys of the odds read model beyond `odds:current:{event_id}` (see Contracts.RedisKeys).
public enum OddsRedisKeys {
    /// Sorted set: member = event_id, score = updated_at (ms) of its newest applied update.
    public static let events = "odds:events"
}

extension RedisScript {
    /// Applies one OddsUpdate to the Redis read model only if its version is newer than the
    /// stored one, and publishes it in the same atomic step, so the channel carries strictly
    /// increasing versions per market in the order Redis applied them.
    ///
    /// KEYS[1] `odds:current:{event_id}`, KEYS[2] `odds:events`.
    /// ARGV: market, version, update JSON, channel, broadcast JSON, event_id, updated_at ms.
    /// Returns 1 when applied (and published), 0 when stale or duplicate (nothing changes).
    public static let applyOddsUpdate = RedisScript("""
        local version = tonumber(ARGV[2])
        local current = redis.call('HGET', KEYS[1], ARGV[1])
        if current then
          local ok, stored = pcall(cjson.decode, current)
          if ok and type(stored) == 'table' and type(stored['version']) == 'number' and stored['version'] >= version then
            return 0
          end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
        redis.call('ZADD', KEYS[2], 'GT', tonumber(ARGV[7]), ARGV[6])
        redis.call('PUBLISH', ARGV[4], ARGV[5])
        return 1
        """)
}

/// Writes updates into the Redis read model with the version-guarded script, pipelined: one
/// round trip per batch. Retrying a batch is safe (a replayed version is a no-op).
public struct RedisOddsWriter: Sendable {
    public let client: RedisClient
    public let channel: String

    public init(client: RedisClient, channel: String = RedisKeys.broadcastChannel) {
        self.client = client
        self.channel = channel
    }

    /// Returns, per update, whether Redis applied it (false = Redis already had that version or newer).
    /// Throws if Redis is unreachable or any script failed, so the caller retries the whole batch.
    public func apply(_ updates: [OddsUpdate]) async throws -> [Bool] {
        guard !updates.isEmpty else { return [] }
        let invocations = updates.map { update in
            let json = update.canonicalJSON()
            let broadcast = BroadcastMessage.canonicalJSON(eventId: update.eventId, payloadJSON: json)
            return RedisClient.ScriptInvocation(
                keys: [RedisKeys.currentOdds(eventId: update.eventId), OddsRedisKeys.events],
                arguments: [update.market, update.version, json, channel, broadcast,
                            update.eventId, update.updatedAt.millisecondsSinceEpoch])
        }
        let results = try await client.evalSHA(.applyOddsUpdate, invocations: invocations)
        return try results.map { result in
            switch result {
            case .success(.integer(let applied)): return applied == 1
            case .success(let other): throw RedisError.unexpectedReply(command: "applyOddsUpdate", reply: other.description)
            case .failure(let error): throw error
            }
        }
    }
}
