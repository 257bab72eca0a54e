import Contracts
import Foundation
import Logging
import PostgresNIO
import Redis

extension RedisScript {
    /// Stores a feed's status overlay and announces it in one atomic step, so odds-service never
    /// misses a change between reading the hash and following the channel.
    /// KEYS[1] `odds:feed_status`; ARGV: feed, status JSON, channel.
    public static let storeFeedStatus = RedisScript("""
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('PUBLISH', ARGV[3], ARGV[2])
        return 1
        """)
}

/// The platform's status overlay of each feed: PostgreSQL (`feed_status`, the record that
/// survives restarts), then Redis (hash + channel, what odds-service reads and follows).
public struct FeedStatusStore: Sendable {
    public let postgres: PostgresClient
    public let redis: RedisClient
    let logger: Logger

    public init(postgres: PostgresClient, redis: RedisClient, logger: Logger) {
        self.postgres = postgres
        self.redis = redis
        self.logger = logger
    }

    /// Every stored overlay, by feed.
    public func load() async throws -> [String: FeedStatus] {
        let rows = try await postgres.query(
            "SELECT feed, state, reason, detail, (extract(epoch FROM since) * 1000)::bigint FROM feed_status",
            logger: logger)
        var statuses: [String: FeedStatus] = [:]
        for try await (feed, state, reason, detail, sinceMillis) in rows.decode((String, String, String?, String?, Int64).self) {
            guard let state = FeedStatus.State(rawValue: state) else { continue }
            statuses[feed] = FeedStatus(feed: feed, state: state, reason: reason, detail: detail,
                                        since: Timestamp(millisecondsSinceEpoch: sinceMillis))
        }
        return statuses
    }

    /// Writes `status` to PostgreSQL, then to Redis with its announcement.
    public func store(_ status: FeedStatus) async throws {
        let sinceMillis = status.since.millisecondsSinceEpoch
        try await postgres.query("""
            INSERT INTO feed_status (feed, state, reason, detail, since, updated_at)
            VALUES (\(status.feed), \(status.state.rawValue), \(status.reason), \(status.detail),
                    to_timestamp(\(Double(sinceMillis)) / 1000.0), now())
            ON CONFLICT (feed) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason,
                detail = EXCLUDED.detail, since = EXCLUDED.since, updated_at = now()
            """, logger: logger)
        let json = Array(status.jsonData())
        _ = try await redis.evalSHA(.storeFeedStatus, keys: [RedisKeys.feedStatus],
                                    arguments: [status.feed, json, RedisKeys.feedStatusChannel])
    }
}
