import ArgumentParser
import Foundation
import Logging
import ServiceSupport

/// `odds-ingest`: supplier WebSocket feed in, validated OddsUpdates into Kafka.
/// Flags override the environment variables named in their help.
@main
struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "odds-ingest",
        abstract: "Reads the supplier feed, validates each frame, publishes valid updates to Kafka and invalid ones to the DLQ.",
        discussion: """
        A malformed setting fails at start with one line and exit code 78. An unreachable supplier or Kafka is \
        not a configuration error: ingest keeps retrying (capped backoff) and /readyz answers 503 until both are up.
        """)

    @Option(help: "Supplier feed URL (SUPPLIER_WS_URL, default ws://127.0.0.1:8081/ws).") var supplierUrl: String?
    @Option(help: "Kafka bootstrap list host:port,... (KAFKA_BROKERS, default 127.0.0.1:9092).") var kafkaBrokers: String?
    @Option(help: "Odds topic (KAFKA_TOPIC_ODDS, default odds_updates).") var topic: String?
    @Option(help: "Dead-letter topic (KAFKA_TOPIC_DLQ, default odds_updates_dlq).") var dlqTopic: String?
    @Option(help: "Bind address of the metrics port (HTTP_HOST, default 0.0.0.0).") var host: String?
    @Option(help: "Metrics and health port (METRICS_PORT, default 9096).") var metricsPort: String?
    @Option(help: "Frames read but not yet acknowledged by Kafka (INGEST_MAX_IN_FLIGHT, default 10000).") var maxInFlight: String?
    @Option(help: "First reconnect delay in ms (INGEST_RECONNECT_MIN_MS, default 100).") var reconnectMinMs: String?
    @Option(help: "Largest reconnect delay in ms (INGEST_RECONNECT_MAX_MS, default 5000).") var reconnectMaxMs: String?
    @Option(help: "Producer linger.ms (KAFKA_LINGER_MS, default 0).") var lingerMs: String?
    @Option(help: "trace|debug|info|notice|warning|error|critical (LOG_LEVEL, default info).") var logLevel: String?
    @Option(help: "json|text (LOG_FORMAT, default json).") var logFormat: String?

    func run() async throws {
        let reader = ConfigurationReader(overrides: [
            "SUPPLIER_WS_URL": supplierUrl, "KAFKA_BROKERS": kafkaBrokers, "KAFKA_TOPIC_ODDS": topic,
            "KAFKA_TOPIC_DLQ": dlqTopic, "HTTP_HOST": host, "METRICS_PORT": metricsPort,
            "INGEST_MAX_IN_FLIGHT": maxInFlight, "INGEST_RECONNECT_MIN_MS": reconnectMinMs,
            "INGEST_RECONNECT_MAX_MS": reconnectMaxMs, "KAFKA_LINGER_MS": lingerMs,
            "LOG_LEVEL": logLevel, "LOG_FORMAT": logFormat,
        ])
        let (logging, ingest) = try ServiceCommand.loadConfiguration(service: "odds-ingest") {
            (try LoggingConfiguration(reader: reader), try IngestConfiguration(reader: reader))
        }
        LoggingSetup.bootstrap(service: "odds-ingest", configuration: logging)
        let logger = Logger(label: "ingest")
        try await ServiceCommand.run(service: "odds-ingest") {
            let group = try IngestApplication.build(configuration: ingest, logger: logger)
            try await group.run()
        }
    }
}
