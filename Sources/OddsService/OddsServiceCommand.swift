import ArgumentParser
import Foundation
import Logging
import ServiceSupport

/// `odds-service`: REST read API and WebSocket subscriptions. Flags override environment variables.
@main
struct OddsServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "odds-service",
        abstract: "REST read API and WebSocket odds subscriptions (Redis first, PostgreSQL fallback).",
        discussion: "Environment: " + ServiceConfiguration.environmentKeys.joined(separator: ", "))

    @Option(name: .customLong("http-port"), help: "Public HTTP/WebSocket port (HTTP_PORT, default 8080).")
    var httpPort: String?
    @Option(name: .customLong("metrics-port"), help: "Health and metrics port (METRICS_PORT, default 9095).")
    var metricsPort: String?
    @Option(name: .customLong("redis-addr"), help: "Redis host:port or redis:// URL (REDIS_ADDR, default 127.0.0.1:6380).")
    var redisAddress: String?
    @Option(name: .customLong("redis-channel"), help: "Pub/sub channel (REDIS_PUBSUB_CHANNEL, default odds_updates_broadcast).")
    var redisChannel: String?
    @Option(name: .customLong("postgres-dsn"), help: "PostgreSQL DSN (POSTGRES_DSN).")
    var postgresDSN: String?
    @Option(name: .customLong("log-level"), help: "LOG_LEVEL (default info).")
    var logLevel: String?
    @Option(name: .customLong("log-format"), help: "LOG_FORMAT json|text (default json).")
    var logFormat: String?
    @Option(name: .customLong("openapi-path"), help: "OpenAPI document served at /openapi.yaml (OPENAPI_PATH, default contracts/openapi.yaml).")
    var openAPIPath: String?
    @Option(name: .customLong("max-subscriptions"), help: "WS_MAX_SUBSCRIPTIONS per connection (default 100).")
    var maxSubscriptions: String?
    @Option(name: .customLong("max-frame-bytes"), help: "WS_MAX_FRAME_BYTES inbound (default 4096).")
    var maxFrameBytes: String?
    @Option(name: .customLong("max-messages-per-second"), help: "WS_MAX_MESSAGES_PER_SECOND inbound (default 20).")
    var maxMessagesPerSecond: String?
    @Option(name: .customLong("max-connections"), help: "WS_MAX_CONNECTIONS (default 20000).")
    var maxConnections: String?
    @Option(name: .customLong("queue-limit"), help: "WS_QUEUE_LIMIT frames before conflation (default 256).")
    var queueLimit: String?
    @Option(name: .customLong("queue-hard-limit"), help: "WS_QUEUE_HARD_LIMIT frames before a slow-consumer close (default max(1024, 4 x queue limit)).")
    var queueHardLimit: String?
    @Option(name: .customLong("heartbeat-seconds"), help: "WS_HEARTBEAT_SECONDS idle time before a heartbeat frame (default 15).")
    var heartbeatSeconds: String?
    @Option(name: .customLong("ping-seconds"), help: "WS_PING_SECONDS WebSocket ping period / dead-peer timeout (default 20).")
    var pingSeconds: String?
    @Option(name: .customLong("send-timeout-ms"), help: "WS_SEND_TIMEOUT_MS blocked write before a slow-consumer close (default 10000).")
    var sendTimeoutMs: String?

    func run() async throws {
        let reader = ConfigurationReader(overrides: [
            "HTTP_PORT": httpPort, "METRICS_PORT": metricsPort, "REDIS_ADDR": redisAddress,
            "REDIS_PUBSUB_CHANNEL": redisChannel, "POSTGRES_DSN": postgresDSN, "LOG_LEVEL": logLevel,
            "LOG_FORMAT": logFormat, "OPENAPI_PATH": openAPIPath, "WS_MAX_SUBSCRIPTIONS": maxSubscriptions,
            "WS_MAX_FRAME_BYTES": maxFrameBytes, "WS_MAX_MESSAGES_PER_SECOND": maxMessagesPerSecond,
            "WS_MAX_CONNECTIONS": maxConnections, "WS_QUEUE_LIMIT": queueLimit, "WS_QUEUE_HARD_LIMIT": queueHardLimit,
            "WS_HEARTBEAT_SECONDS": heartbeatSeconds, "WS_PING_SECONDS": pingSeconds, "WS_SEND_TIMEOUT_MS": sendTimeoutMs,
        ])
        let configuration = try ServiceCommand.loadConfiguration(service: "odds-service") {
            try ServiceConfiguration(reader: reader)
        }
        LoggingSetup.bootstrap(service: "odds-service", configuration: configuration.logging)
        let registry = MetricsSetup.bootstrap()
        let logger = Logger(label: "odds-service")
        raiseFileDescriptorLimit(logger: logger)
        let app = try buildApplication(configuration: configuration, registry: registry, logger: logger)
        logger.info("odds-service starting", metadata: [
            "httpPort": "\(configuration.httpPort)", "metricsPort": "\(configuration.metricsPort)",
            "redis": "\(configuration.redis)", "postgres": "\(configuration.postgres)",
            "channel": "\(configuration.channel)", "maxConnections": "\(configuration.ws.maxConnections)",
        ])
        try await app.serviceGroup().run()
    }
}

/// WebSocket connections are file descriptors: lift the soft limit to the hard limit.
func raiseFileDescriptorLimit(logger: Logger) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("could not raise the open file limit", metadata: ["errno": "\(errno)"])
        }
    }
}
