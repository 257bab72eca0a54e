import Metrics

/// Metric handles of the Redis layer, created once per client/subscriber (swift-metrics).
///
/// - `redis_commands_total`: commands sent (a pipeline of N counts N).
/// - `redis_command_errors_total{kind}`: kind = `server` (error reply), `connection`, `timeout`, `pool`.
/// - `redis_reconnects_total`: successful re-connects of pooled connections after a failure.
/// - `redis_connect_failures_total`: failed connection attempts.
/// - `redis_command_duration_seconds`: round-trip time of one command or one whole pipeline.
/// - `redis_subscriber_reconnects_total`: subscriber re-connects (each one is a pub/sub gap).
/// - `redis_subscriber_messages_total`: pub/sub messages received.
struct RedisMetrics: Sendable {
    let commands: Counter
    let serverErrors: Counter
    let connectionErrors: Counter
    let timeoutErrors: Counter
    let poolErrors: Counter
    let reconnects: Counter
    let connectFailures: Counter
    let commandDuration: Timer
    let subscriberReconnects: Counter
    let subscriberMessages: Counter

    init(dimensions: [(String, String)] = []) {
        commands = Counter(label: "redis_commands_total", dimensions: dimensions)
        serverErrors = Counter(label: "redis_command_errors_total", dimensions: dimensions + [("kind", "server")])
        connectionErrors = Counter(label: "redis_command_errors_total", dimensions: dimensions + [("kind", "connection")])
        timeoutErrors = Counter(label: "redis_command_errors_total", dimensions: dimensions + [("kind", "timeout")])
        poolErrors = Counter(label: "redis_command_errors_total", dimensions: dimensions + [("kind", "pool")])
        reconnects = Counter(label: "redis_reconnects_total", dimensions: dimensions)
        connectFailures = Counter(label: "redis_connect_failures_total", dimensions: dimensions)
        commandDuration = Timer(label: "redis_command_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds)
        subscriberReconnects = Counter(label: "redis_subscriber_reconnects_total", dimensions: dimensions)
        subscriberMessages = Counter(label: "redis_subscriber_messages_total", dimensions: dimensions)
    }

    func recordError(_ error: RedisError) {
        switch error {
        case .server: serverErrors.increment()
        case .timeout: timeoutErrors.increment()
        case .poolExhausted, .shutdown: poolErrors.increment()
        default: connectionErrors.increment()
        }
    }
}
