import ArgumentParser
import Foundation
import Kafka
import Logging
import PostgresNIO
import ReadModels
import Redis
import ServiceLifecycle
import ServiceSupport

/// `odds-processor`: Kafka `odds_updates` → PostgreSQL and Redis read models.
@main
struct ProcessorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "odds-processor",
        abstract: "Consume odds_updates and maintain the Redis and PostgreSQL read models (exactly-once effect).")

    @Option(help: "Kafka bootstrap servers (env KAFKA_BROKERS).") var brokers: String?
    @Option(help: "Odds topic (env KAFKA_TOPIC_ODDS).") var topic: String?
    @Option(help: "Consumer group (env KAFKA_GROUP_ID, default odds-processor).") var group: String?
    @Option(help: "Max messages per batch (env PROCESSOR_BATCH_SIZE, default 2000).") var batchSize: Int?
    @Option(help: "Longest wait for the first message of a batch in ms (env PROCESSOR_BATCH_WAIT_MS, default 250).") var batchWaitMs: Int?
    @Option(help: "Redis address (env REDIS_ADDR).") var redis: String?
    @Option(help: "PostgreSQL DSN (env POSTGRES_DSN).") var postgresDsn: String?
    @Option(help: "Metrics/health port (env METRICS_PORT, default 9097).") var metricsPort: Int?
    @Option(help: "Apply pending migrations at start: true|false (env PROCESSOR_APPLY_MIGRATIONS, default true).")
    var applyMigrations: String?

    func run() async throws {
        let reader = ConfigurationReader(overrides: [
            "KAFKA_BROKERS": brokers, "KAFKA_TOPIC_ODDS": topic, "KAFKA_GROUP_ID": group,
            "PROCESSOR_BATCH_SIZE": batchSize.map(String.init), "PROCESSOR_BATCH_WAIT_MS": batchWaitMs.map(String.init),
            "REDIS_ADDR": redis, "POSTGRES_DSN": postgresDsn, "METRICS_PORT": metricsPort.map(String.init),
            "PROCESSOR_APPLY_MIGRATIONS": applyMigrations,
        ])
        let configuration = try ServiceCommand.loadConfiguration(service: "odds-processor") {
            try ProcessorConfiguration(reader: reader)
        }
        LoggingSetup.bootstrap(service: "odds-processor", configuration: configuration.logging)
        let logger = Logger(label: "odds-processor")
        try await ServiceCommand.run(service: "odds-processor") {
            let group = try buildProcessor(configuration: configuration, logger: logger)
            try await group.run()
        }
    }
}

/// Wires clients and services. Order matters: ServiceGroup starts them in order and shuts them
/// down in reverse, so the edge (operations endpoint, then the processing loop) stops first and
/// the stores last.
func buildProcessor(configuration: ProcessorConfiguration, logger: Logger) throws -> ServiceGroup {
    let registry = MetricsSetup.bootstrap()

    var postgresConfiguration = try configuration.postgres.clientConfiguration()
    postgresConfiguration.options.maximumConnections = 4
    let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
    let redis = RedisClient(configuration: configuration.redis, logger: logger)

    var consumerConfiguration = KafkaConsumerConfiguration(bootstrapServers: configuration.kafkaBrokers, groupID: configuration.groupID)
    consumerConfiguration.clientID = "odds-processor"
    consumerConfiguration.sessionTimeout = configuration.sessionTimeout
    consumerConfiguration.heartbeatInterval = .milliseconds(500)
    // Kafka's own default: a broker answers a waiting fetch as soon as data arrives, so the wait
    // only bounds how often an idle consumer asks (the dev broker does the same, see its front).
    consumerConfiguration.fetchMaxWait = .milliseconds(500)
    // Stored offsets: the processor commits them (CommitPacer); librdkafka's timer is a slow
    // backstop, and with it librdkafka commits them before partitions move or the consumer closes.
    if configuration.commitInterval > .zero { consumerConfiguration.autoCommitInterval = max(configuration.commitInterval, .seconds(5)) }
    consumerConfiguration.properties = configuration.extraConsumerProperties
    let consumer = try KafkaConsumer(configuration: consumerConfiguration, logger: logger)

    var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.kafkaBrokers)
    producerConfiguration.clientID = "odds-processor-dlq"
    let deadLetters = try KafkaProducer(configuration: producerConfiguration, logger: logger)
    let admin = try KafkaAdmin(bootstrapServers: configuration.kafkaBrokers, logger: logger)

    let health = ProcessorHealth()
    let processor = ProcessorService(
        configuration: configuration, consumer: consumer, deadLetters: deadLetters, postgres: postgres,
        redisWriter: RedisOddsWriter(client: redis, channel: configuration.channel), health: health, logger: logger)

    let feedWatch = FeedWatch(
        brokers: configuration.kafkaBrokers, statusTopic: configuration.feedStatusTopic, oddsTopic: configuration.topic,
        staleAfter: configuration.feedStaleAfter, oddsConsumer: consumer, admin: admin,
        store: FeedStatusStore(postgres: postgres, redis: redis, logger: logger), health: health,
        logger: Logger(label: "processor.feed-watch"))

    let operations = OperationsServer.application(
        port: configuration.metricsPort, registry: registry,
        readiness: [
            ReadinessCheck(name: "kafka") { await admin.isReachable(timeout: .seconds(1)) },
            ReadinessCheck(name: "postgres") {
                (try? await postgres.query("SELECT 1", logger: logger)) != nil
            },
            ReadinessCheck(name: "redis") { (try? await redis.ping()) != nil },
            ReadinessCheck(name: "processing") { health.isReady },
        ],
        logger: logger)

    logger.info("odds-processor starting", metadata: [
        "kafka": "\(configuration.kafkaBrokers)", "topic": "\(configuration.topic)", "group": "\(configuration.groupID)",
        "redis": "\(configuration.redis.host):\(configuration.redis.port)", "postgres": "\(configuration.postgres)",
        "metrics_port": "\(configuration.metricsPort)", "batch_size": "\(configuration.batchSize)",
        "feed_status_topic": "\(configuration.feedStatusTopic)", "feed_stale_after": "\(configuration.feedStaleAfter)",
    ])
    var groupConfiguration = ServiceGroupConfiguration(
        services: [
            .init(service: postgres),
            .init(service: redis),
            .init(service: deadLetters),
            .init(service: processor, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
            .init(service: feedWatch),
            .init(service: operations),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger)
    // The batch in hand finishes and is committed; a store that stays down must not turn a
    // SIGTERM into a process that never exits (the batch is replayed after the restart).
    groupConfiguration.maximumGracefulShutdownDuration = .seconds(30)
    return ServiceGroup(configuration: groupConfiguration)
}
