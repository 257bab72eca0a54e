import Contracts
import Foundation
import Kafka
import Logging
import Metrics
import Migrations
import PostgresNIO
import ReadModels
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// Shared between the processing loop and `/readyz`.
final class ProcessorHealth: Sendable {
    private let state = Mutex((schemaReady: false, storesHealthy: true))

    var isReady: Bool { state.withLock { $0.schemaReady && $0.storesHealthy } }
    var isSchemaReady: Bool { state.withLock { $0.schemaReady } }
    func schemaApplied() { state.withLock { $0.schemaReady = true } }
    func storesHealthy(_ healthy: Bool) { state.withLock { $0.storesHealthy = healthy } }
}

/// The consume → validate → collapse → PostgreSQL → Redis → commit loop.
///
/// Offsets are committed (or stored for the next interval's commit) only after PostgreSQL
/// committed and Redis applied the batch, so a crash anywhere replays the batch; the version
/// guards make the replay a no-op (at-least-once delivery + idempotent effects). Redis is
/// written for every update of the batch, not only those PostgreSQL accepted, so a Redis write
/// lost after a PostgreSQL commit is repaired by the replay: Redis never stays behind PostgreSQL.
final class ProcessorService: Service, Sendable {
    let configuration: ProcessorConfiguration
    let consumer: KafkaConsumer
    let deadLetters: KafkaProducer
    let postgres: PostgresClient
    let postgresWriter: PostgresOddsWriter
    let redisWriter: RedisOddsWriter
    let health: ProcessorHealth
    let metrics = ProcessorMetrics()
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let commitPacer: Mutex<CommitPacer>

    init(configuration: ProcessorConfiguration, consumer: KafkaConsumer, deadLetters: KafkaProducer,
         postgres: PostgresClient, redisWriter: RedisOddsWriter, health: ProcessorHealth, logger: Logger) {
        self.configuration = configuration
        self.consumer = consumer
        self.deadLetters = deadLetters
        self.postgres = postgres
        postgresWriter = PostgresOddsWriter(client: postgres, logger: logger)
        self.redisWriter = redisWriter
        self.health = health
        self.logger = logger
        commitPacer = Mutex(CommitPacer(interval: configuration.commitInterval))
    }

    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    func run() async throws {
        let fatal: (any Error)? = await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self, returning: (any Error)?.self) { group in
                group.addTask { await self.reportLag() }
                group.addTask { await self.logRebalances() }
                var fatal: (any Error)?
                do {
                    try await self.prepareSchema()
                    try self.consumer.subscribe(topics: [self.configuration.topic])
                    try await self.processUntilStopped()
                } catch is CancellationError {
                } catch {
                    self.logger.critical("processor stopped", metadata: ["error": "\(error)"])
                    fatal = error
                }
                self.stopping.store(true, ordering: .relaxed)
                group.cancelAll()
                return fatal
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
        // Leave the group so partitions move to the other members right away.
        do { try await consumer.close() } catch { logger.warning("consumer close failed", metadata: ["error": "\(error)"]) }
        logger.info("processor stopped")
        // A processor that cannot run (schema behind, failed migration) must exit non-zero so a
        // supervisor sees it, rather than looking like a clean shutdown.
        if let fatal { throw fatal }
    }

    // MARK: - Startup

    /// Applies pending migrations, or refuses to start when told not to and the schema is behind.
    func prepareSchema() async throws {
        let migrations = try MigrationLoader.load(from: configuration.migrationsDirectory)
        let runner = MigrationRunner(migrations: migrations, logger: logger)
        try await retrying("schema") {
            try await self.postgres.withConnection { connection in
                if self.configuration.applyMigrations {
                    try await runner.migrate(on: connection)
                } else {
                    let status = try await runner.status(on: connection)
                    guard status.isCurrent else {
                        throw SchemaBehind(pending: status.pending.map { "V\($0.version)__\($0.name)" })
                    }
                }
            }
        }
        health.schemaApplied()
    }

    struct SchemaBehind: Error, CustomStringConvertible {
        let pending: [String]
        var description: String {
            "database schema is behind (pending: \(pending.joined(separator: ", "))) and PROCESSOR_APPLY_MIGRATIONS=false; run `migrate` first"
        }
    }

    // MARK: - Processing

    func processUntilStopped() async throws {
        while !isStopping {
            let messages = try await consumer.poll(maxMessages: configuration.batchSize, maxWait: configuration.batchMaxWait)
            guard !messages.isEmpty else {
                commitIfIdle()
                continue
            }
            try await process(messages)
        }
    }

    /// The input paused: commit what was stored and not committed yet (see `CommitPacer`).
    private func commitIfIdle() {
        guard configuration.commitInterval > .zero, commitPacer.withLock({ $0.idle(now: .now) }) else { return }
        do {
            try consumer.commitStoredAsync()
        } catch {
            metrics.commitFailures.increment()
            logger.warning("offset commit failed; the next one or the partition's owner makes up for it", metadata: ["error": "\(error)"])
        }
    }

    func process(_ messages: [KafkaConsumerMessage]) async throws {
        let started = ContinuousClock.now
        let plan = BatchPlan(messages: messages)
        metrics.consumed.increment(by: plan.messageCount)
        metrics.batchSize.record(plan.messageCount)
        metrics.collapsed.increment(by: plan.collapsedCount)

        for poison in plan.poison {
            metrics.invalid(poison.reason.primaryCode).increment()
            logger.warning("poison message sent to DLQ", metadata: [
                "topic": "\(poison.message.topic)", "partition": "\(poison.message.partition)",
                "offset": "\(poison.message.offset)", "reason": "\(poison.reason)",
            ])
            let record = BatchPlan.deadLetter(poison, topic: configuration.deadLetterTopic)
            _ = try await retrying("dlq") {
                let report = try await self.deadLetters.send(record)
                if let error = report.error { throw error }
            }
            metrics.deadLettered.increment()
        }

        if !plan.updates.isEmpty {
            // PostgreSQL first, then Redis (and the broadcast): every version a subscriber can
            // see is already in odds_history. In the other order a crash between the two writes,
            // replayed as differently grouped batches, could broadcast a version that history
            // never gets (the replay may collapse it under a newer one).
            let postgresStarted = ContinuousClock.now
            let won = try await retrying("postgres") { try await self.postgresWriter.apply(plan.updates) }
            metrics.postgresWriteLatency.recordInterval(since: postgresStarted)

            let redisStarted = ContinuousClock.now
            let redisApplied = try await retrying("redis") { try await self.redisWriter.apply(plan.updates) }
            metrics.redisWriteLatency.recordInterval(since: redisStarted)

            let now = Timestamp.now().millisecondsSinceEpoch
            for (update, appliedInRedis) in zip(plan.updates, redisApplied) {
                if won.contains(update.marketKey) {
                    metrics.applied.increment()
                    metrics.endToEndLag.recordMilliseconds(max(0, now - update.updatedAt.millisecondsSinceEpoch))
                } else {
                    metrics.staleDropped.increment()
                    if appliedInRedis { metrics.redisRepaired.increment() }
                }
            }
        }

        do {
            // Not awaited: the effects are already durable, so the next batch need not wait for
            // the broker's answer. A commit that fails is superseded by the next one, or the
            // batch is replayed, which the version guards make harmless. With a commit interval
            // the positions are stored and committed at most once per interval (`CommitPacer`);
            // librdkafka commits them too before the partitions are revoked or the consumer closes.
            if configuration.commitInterval > .zero {
                try consumer.storeOffsets(plan.commitPositions)
                if commitPacer.withLock({ $0.stored(now: .now) }) { try consumer.commitStoredAsync() }
            } else {
                try consumer.commitAsync(plan.commitPositions)
            }
        } catch {
            // After a rebalance the new owner replays from the last commit; effects are idempotent.
            metrics.commitFailures.increment()
            logger.warning("offset commit failed; the batch will be replayed by the partition's owner",
                           metadata: ["error": "\(error)"])
        }
        metrics.batchLatency.recordInterval(since: started)
    }

    /// Retries `operation` with capped backoff until it succeeds or the service is stopping.
    /// While failing, `/readyz` reports not ready; consumption waits (nothing is committed).
    func retrying<T>(_ stage: String, _ operation: () async throws -> T) async throws -> T {
        var backoff = Backoff(base: .milliseconds(100), cap: .seconds(5))
        while true {
            do {
                let value = try await operation()
                if backoff.attempt > 0 {
                    health.storesHealthy(true)
                    logger.info("dependency recovered", metadata: ["stage": "\(stage)", "attempts": "\(backoff.attempt)"])
                }
                return value
            } catch let error as SchemaBehind {
                throw error
            } catch let error as MigrationError {
                throw error
            } catch {
                // Cancelled (the service group is going down) or told to stop: give up the batch;
                // nothing was committed, so it is replayed after the restart.
                if isStopping || Task.isCancelled || error is CancellationError { throw CancellationError() }
                health.storesHealthy(false)
                metrics.dependencyFailures.increment()
                let delay = backoff.nextDelay()
                logger.error("write failed; retrying", metadata: [
                    "stage": "\(stage)", "attempt": "\(backoff.attempt)", "retry_in": "\(delay)",
                    "error": "\(String(reflecting: error).prefix(300))",
                ])
                try? await Task.sleep(for: delay)
            }
        }
    }

    // MARK: - Side tasks

    func reportLag() async {
        while !Task.isCancelled {
            if let lag = try? await consumer.lag() {
                for (partition, value) in lag { metrics.lag(partition: partition.partition).record(Double(value)) }
            }
            try? await Task.sleep(for: .seconds(5))
        }
    }

    func logRebalances() async {
        for await event in consumer.rebalanceEvents {
            switch event {
            case .assigned(let partitions):
                logger.info("partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
            case .revoked(let partitions):
                logger.info("partitions revoked", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
            }
        }
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
