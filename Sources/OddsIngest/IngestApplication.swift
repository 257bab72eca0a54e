import Foundation
import Kafka
import Logging
import ServiceLifecycle
import ServiceSupport

/// Wires ingest: metrics, the idempotent producer, the publisher, the supplier reader and the
/// operations endpoint. The group lists dependencies first and the edge (the feed reader) last,
/// and shuts down in reverse: stop reading the supplier, wait for Kafka to acknowledge what was
/// read, flush and close the producer, then stop the operations endpoint.
enum IngestApplication {
    static func build(configuration: IngestConfiguration, logger: Logger) throws -> ServiceGroup {
        let registry = MetricsSetup.bootstrap()
        let metrics = IngestMetrics()

        var producerConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.kafkaBrokers)
        producerConfiguration.clientID = "odds-ingest"
        producerConfiguration.idempotent = true
        producerConfiguration.acks = .all
        producerConfiguration.linger = configuration.kafkaLinger
        producerConfiguration.deliveryTimeout = configuration.kafkaDeliveryTimeout
        // Room for every window slot plus retries in transit, so `enqueue` never waits on the
        // producer's own bound: the window is the one place ingest waits.
        producerConfiguration.maxInFlightMessages = configuration.maxInFlight * 2 + 1_024
        producerConfiguration.properties = [
            // Come back quickly when a broker returns.
            "reconnect.backoff.ms": "100",
            "reconnect.backoff.max.ms": "1000",
        ]
        let producer = try KafkaProducer(configuration: producerConfiguration, logger: Logger(label: "ingest.kafka"))
        let admin = try KafkaAdmin(bootstrapServers: configuration.kafkaBrokers, clientID: "odds-ingest-health",
                                   logger: Logger(label: "ingest.kafka.admin"))

        let window = InFlightWindow(capacity: configuration.maxInFlight)
        let progress = FeedProgress(claim: nil)
        let publisher = KafkaPublisher(producer: producer, window: window, progress: progress, metrics: metrics,
                                       logger: Logger(label: "ingest.publisher"), drainTimeout: configuration.drainTimeout)
        let status = FeedStatus()
        let board = FeedHealthBoard()
        let lastRead = LastRead()
        var reader = FeedReader(
            url: configuration.supplierURL,
            router: FrameRouter(oddsTopic: configuration.oddsTopic, deadLetterTopic: configuration.deadLetterTopic),
            publisher: publisher, progress: progress, status: status, board: board, lastRead: lastRead,
            metrics: metrics, logger: Logger(label: "ingest.feed"),
            minimumBackoff: configuration.reconnectMinimum, maximumBackoff: configuration.reconnectMaximum,
            kafkaBrokers: configuration.kafkaBrokers, resumeTopics: [configuration.oddsTopic, configuration.deadLetterTopic])
        reader.silenceLimit = configuration.silenceLimit
        reader.handshakeTimeout = configuration.handshakeTimeout
        reader.heartbeatTopic = configuration.feedStatusTopic
        reader.feedID = configuration.feedID
        // Heartbeats have their own producer: a heartbeat is worth something only while it is
        // fresh, so it gives up after a few intervals (a late one must not say "up" about the
        // past), and a shutdown never waits long for one.
        var heartbeatConfiguration = KafkaProducerConfiguration(bootstrapServers: configuration.kafkaBrokers)
        heartbeatConfiguration.clientID = "odds-ingest-heartbeats"
        heartbeatConfiguration.idempotent = false
        heartbeatConfiguration.acks = .all
        heartbeatConfiguration.linger = .zero
        heartbeatConfiguration.requestTimeout = .seconds(2)
        heartbeatConfiguration.deliveryTimeout = max(.seconds(3), configuration.heartbeatInterval * 3)
        heartbeatConfiguration.properties = ["reconnect.backoff.ms": "100", "reconnect.backoff.max.ms": "1000"]
        let heartbeatProducer = try KafkaProducer(configuration: heartbeatConfiguration, logger: Logger(label: "ingest.kafka.heartbeats"))
        let heartbeats = FeedHeartbeats(
            feed: configuration.feedID, instance: "\(ProcessInfo.processInfo.hostName):\(getpid())",
            topic: configuration.feedStatusTopic, producer: heartbeatProducer, board: board, progress: progress,
            lastRead: lastRead, metrics: metrics, logger: Logger(label: "ingest.heartbeats"), interval: configuration.heartbeatInterval)

        let operations = OperationsServer.application(
            host: configuration.host, port: configuration.metricsPort, registry: registry,
            readiness: [
                ReadinessCheck(name: "supplier") { status.isConnected },
                ReadinessCheck(name: "kafka") {
                    publisher.isHealthy ? await admin.isReachable(timeout: .seconds(1)) : false
                },
            ],
            logger: Logger(label: "ingest.operations"))

        logger.info("odds-ingest starting", metadata: [
            "supplier": "\(configuration.supplierURL)", "kafka": "\(configuration.kafkaBrokers)",
            "topic": "\(configuration.oddsTopic)", "dlq": "\(configuration.deadLetterTopic)",
            "max_in_flight": "\(configuration.maxInFlight)", "metrics_port": "\(configuration.metricsPort)",
            "feed": "\(configuration.feedID)", "feed_status_topic": "\(configuration.feedStatusTopic)",
        ])
        var groupConfiguration = ServiceGroupConfiguration(
            services: ([operations, producer, heartbeatProducer, heartbeats, publisher, reader] as [any Service]).map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // Room for the publisher's drain plus the producer's flush, then cancel.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.drainTimeout + .seconds(45)
        return ServiceGroup(configuration: groupConfiguration)
    }
}
