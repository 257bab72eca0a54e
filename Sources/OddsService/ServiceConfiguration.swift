import Contracts
import Foundation
import Logging
import Migrations
import Redis
import ServiceSupport

/// Everything odds-service reads at start (environment, overridden by command-line flags).
/// A wrong value fails with one `ConfigurationError` line.
struct ServiceConfiguration: Sendable {
    var host = "0.0.0.0"
    var httpPort = 8080
    var metricsPort = 9095
    var redis: RedisConfiguration
    var redisAddressText: String
    var channel = RedisKeys.broadcastChannel
    var postgres: PostgresDSN
    var logging = LoggingConfiguration()
    /// Path of the OpenAPI document served at `GET /openapi.yaml`.
    var openAPIPath = "contracts/openapi.yaml"
    var ws = WebSocketLimits()
    /// Upper bound of `GET /v1/events?limit=` and its default.
    var maxEventsPerPage = 1000
    var defaultEventsPerPage = 100
    /// How often the feed status overlay (`odds:feed_status`) is re-read besides following its
    /// channel (FEED_STATUS_RELOAD_MS): the bound on a lost pub/sub message.
    var feedStatusReload: Duration = .seconds(5)
    /// Events whose current odds are mirrored in memory, kept current by the broadcast channel
    /// (READ_MIRROR_EVENTS; 0: every read goes to Redis). See `LiveOddsMirror`.
    var readMirrorEvents = 20_000

    struct WebSocketLimits: Sendable {
        /// Subscriptions per connection (WS_MAX_SUBSCRIPTIONS).
        var maxSubscriptions = 100
        /// Largest inbound message handled; bigger ones get an `error` frame (WS_MAX_FRAME_BYTES).
        var maxFrameBytes = 4096
        /// Inbound messages per second per connection, token bucket (WS_MAX_MESSAGES_PER_SECOND).
        var maxMessagesPerSecond = 20
        /// Open WebSocket connections per process (WS_MAX_CONNECTIONS).
        var maxConnections = 20_000
        /// Pending frames per connection before conflation starts (WS_QUEUE_LIMIT).
        var queueLimit = 256
        /// Pending frames after conflation beyond which the client is closed (WS_QUEUE_HARD_LIMIT).
        var queueHardLimit = 1024
        /// Idle time before a `{"type":"heartbeat"}` frame (WS_HEARTBEAT_SECONDS, milliseconds via WS_HEARTBEAT_MS).
        var heartbeat: Duration = .seconds(15)
        /// WebSocket ping period; a peer that has not answered the previous ping is closed (WS_PING_SECONDS / WS_PING_MS).
        var pingInterval: Duration = .seconds(20)
        /// A write blocked longer than this closes the connection as a slow consumer (WS_SEND_TIMEOUT_MS).
        var sendTimeout: Duration = .seconds(10)
        /// Hard cap on one inbound frame at the protocol level; above it the connection is closed 1009.
        var hardFrameBytes: Int { max(64 * 1024, maxFrameBytes * 4) }
        /// Consecutive rate-limited messages after which the connection is closed 1008.
        var abusiveViolations: Int { max(50, maxMessagesPerSecond * 5) }
    }

    init(reader: ConfigurationReader) throws {
        host = reader.string("HTTP_HOST", default: "0.0.0.0")
        httpPort = try reader.integer("HTTP_PORT", default: 8080, range: 0...65_535)
        metricsPort = try reader.integer("METRICS_PORT", default: 9095, range: 0...65_535)
        redisAddressText = reader.string("REDIS_ADDR", default: "127.0.0.1:6380")
        do {
            redis = try RedisConfiguration(address: redisAddressText)
        } catch {
            throw ConfigurationError(key: "REDIS_ADDR", reason: "\(error)")
        }
        redis.poolSize = try reader.integer("REDIS_POOL_SIZE", default: 8, range: 1...256)
        channel = reader.string("REDIS_PUBSUB_CHANNEL", default: RedisKeys.broadcastChannel)
        guard !channel.isEmpty else { throw ConfigurationError(key: "REDIS_PUBSUB_CHANNEL", reason: "must not be empty") }
        let dsnText = reader.string("POSTGRES_DSN", default: "postgres://odds:odds@127.0.0.1:5433/odds")
        do {
            postgres = try PostgresDSN(dsnText)
        } catch {
            throw ConfigurationError(key: "POSTGRES_DSN", reason: "\(error)")
        }
        logging = try LoggingConfiguration(reader: reader)
        openAPIPath = reader.string("OPENAPI_PATH", default: "contracts/openapi.yaml")
        ws.maxSubscriptions = try reader.integer("WS_MAX_SUBSCRIPTIONS", default: 100, range: 1...100_000)
        ws.maxFrameBytes = try reader.integer("WS_MAX_FRAME_BYTES", default: 4096, range: 64...1_048_576)
        ws.maxMessagesPerSecond = try reader.integer("WS_MAX_MESSAGES_PER_SECOND", default: 20, range: 1...100_000)
        ws.maxConnections = try reader.integer("WS_MAX_CONNECTIONS", default: 20_000, range: 1...1_000_000)
        ws.queueLimit = try reader.integer("WS_QUEUE_LIMIT", default: 256, range: 1...1_000_000)
        ws.queueHardLimit = try reader.integer("WS_QUEUE_HARD_LIMIT", default: max(1024, ws.queueLimit * 4),
                                               range: ws.queueLimit...10_000_000)
        if reader.raw("WS_HEARTBEAT_MS") != nil {
            ws.heartbeat = try reader.milliseconds("WS_HEARTBEAT_MS", default: 15_000, range: 50...3_600_000)
        } else {
            ws.heartbeat = .seconds(try reader.integer("WS_HEARTBEAT_SECONDS", default: 15, range: 1...3600))
        }
        if reader.raw("WS_PING_MS") != nil {
            ws.pingInterval = try reader.milliseconds("WS_PING_MS", default: 20_000, range: 50...3_600_000)
        } else {
            ws.pingInterval = .seconds(try reader.integer("WS_PING_SECONDS", default: 20, range: 1...3600))
        }
        ws.sendTimeout = try reader.milliseconds("WS_SEND_TIMEOUT_MS", default: 10_000, range: 50...3_600_000)
        feedStatusReload = try reader.milliseconds("FEED_STATUS_RELOAD_MS", default: 5000, range: 100...3_600_000)
        readMirrorEvents = try reader.integer("READ_MIRROR_EVENTS", default: 20_000, range: 0...10_000_000)
    }

    /// The keys above, for `--help` and the README.
    static let environmentKeys = [
        "HTTP_HOST", "HTTP_PORT", "METRICS_PORT", "REDIS_ADDR", "REDIS_POOL_SIZE", "REDIS_PUBSUB_CHANNEL",
        "POSTGRES_DSN", "LOG_LEVEL", "LOG_FORMAT", "OPENAPI_PATH", "WS_MAX_SUBSCRIPTIONS", "WS_MAX_FRAME_BYTES",
        "WS_MAX_MESSAGES_PER_SECOND", "WS_MAX_CONNECTIONS", "WS_QUEUE_LIMIT", "WS_QUEUE_HARD_LIMIT",
        "WS_HEARTBEAT_SECONDS", "WS_HEARTBEAT_MS", "WS_PING_SECONDS", "WS_PING_MS", "WS_SEND_TIMEOUT_MS",
        "FEED_STATUS_RELOAD_MS", "READ_MIRROR_EVENTS",
    ]
}
