import CRDKafka
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// A Kafka consumer group member over librdkafka, with manual commits.
///
/// Typical loop: `poll` a batch, process it, `commit(messages:)`, poll again. Rebalance
/// callbacks are served inside `poll` (as in librdkafka and the Java client), so by the time
/// partitions are revoked the previous batch has been processed and committed. Messages of
/// partitions revoked during a `poll` are dropped from its result, never handed out.
///
/// Blocking librdkafka calls run on two dedicated threads per consumer: one consumes and
/// serves callbacks, the other runs synchronous commits and offset queries.
public final class KafkaConsumer: Service, Sendable {
    public let configuration: KafkaConsumerConfiguration
    /// Assigned/revoked partitions, in order. Unbounded (rebalances are rare); finishes on close.
    public let rebalanceEvents: AsyncStream<KafkaRebalanceEvent>

    private let client: RDKafkaClient
    private let core: ConsumerCore
    private let pollWorker: BlockingWorker
    private let opsWorker: BlockingWorker
    private let logger: Logger

    public init(configuration: KafkaConsumerConfiguration, logger: Logger = Logger(label: "kafka.consumer")) throws {
        let (events, continuation) = AsyncStream.makeStream(of: KafkaRebalanceEvent.self, bufferingPolicy: .unbounded)
        let core = ConsumerCore(groupID: configuration.groupID, logger: logger, events: continuation)
        let callbacks = RDKafkaCallbacks(
            logger: logger,
            onRebalance: { rk, code, partitions in core.handleRebalance(rk, code, partitions) },
            onCommit: { code, offsets in core.handleCommitResult(code, offsets) },
            onError: { error in core.handleClientError(error) }
        )
        client = try RDKafkaClient(type: RD_KAFKA_CONSUMER, properties: configuration.librdkafkaProperties, callbacks: callbacks)
        self.configuration = configuration
        self.core = core
        self.logger = logger
        self.rebalanceEvents = events
        pollWorker = BlockingWorker(name: "kafka-cons-poll")
        opsWorker = BlockingWorker(name: "kafka-cons-ops")
    }

    /// Creates the consumer and subscribes it to `topics`.
    public convenience init(configuration: KafkaConsumerConfiguration, topics: [String], logger: Logger = Logger(label: "kafka.consumer")) throws {
        try self.init(configuration: configuration, logger: logger)
        try subscribe(topics: topics)
    }

    deinit {
        if !core.isClosed {
            logger.warning("kafka consumer released without close(); closing now", metadata: ["kafka.client": "\(client.name)"])
            let client = self.client
            pollWorker.runAndWait { _ = rd_kafka_consumer_close(client.handle) }
            core.finish()
        }
        pollWorker.stop()
        opsWorker.stop()
    }

    /// Joins the group for `topics` (replacing any previous subscription).
    public func subscribe(topics: [String]) throws {
        try core.ensureOpen(context: "subscribe")
        let list = PartitionList.make(topics.map { TopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_subscribe(client.handle, list)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code, context: "subscribe to \(topics.joined(separator: ","))")
        }
    }

    /// Partitions this member currently owns.
    public var assignment: Set<TopicPartition> { core.assignment }

    /// Reads exactly `positions` (each partition from its offset), outside any group: no
    /// rebalances, nothing to commit. For reading a known range, such as a topic's last messages.
    public func assign(_ positions: [TopicPartitionOffset]) throws {
        try core.ensureOpen(context: "assign")
        let list = PartitionList.make(positions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_assign(client.handle, list)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code, context: "assign \(positions.map(\.description).joined(separator: ","))")
        }
        core.replaceAssignment(Set(positions.map(\.topicPartition)))
    }

    /// The partition's first offset still held and the offset the next message will get, as the
    /// broker says now.
    public func watermarks(of partition: TopicPartition, timeout: Duration = .seconds(5)) async throws -> (low: Int64, high: Int64) {
        try core.ensureOpen(context: "query watermarks")
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        return try await opsWorker.run {
            var low: Int64 = 0
            var high: Int64 = 0
            let code = rd_kafka_query_watermark_offsets(client.handle, partition.topic, partition.partition, &low, &high, milliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(code, context: "query watermarks of \(partition)")
            }
            return (low, high)
        }
    }

    /// Returns up to `maxMessages` messages: as soon as at least one is available (plus whatever
    /// else is already fetched), or an empty array after `maxWait`.
    /// - Throws: only for fatal consumer errors or after `close()`; transient broker and network
    ///   errors are logged and retried by librdkafka.
    public func poll(maxMessages: Int = 1_000, maxWait: Duration = .milliseconds(100)) async throws -> [KafkaConsumerMessage] {
        try core.ensureOpen(context: "poll")
        let client = self.client
        let core = self.core
        let limit = max(1, maxMessages)
        let milliseconds = maxWait.kafkaMilliseconds
        return try await pollWorker.run { try core.consume(client: client, maxMessages: limit, timeoutMilliseconds: milliseconds) }
    }

    // MARK: - Commits

    /// Commits `positions` (next offsets to consume) and waits for the broker. Retries
    /// retriable failures (rebalance in progress, coordinator moving, timeouts) a few times.
    public func commit(_ positions: [TopicPartitionOffset]) async throws {
        guard !positions.isEmpty else { return }
        try core.ensureOpen(context: "commit")
        let client = self.client
        var attempt = 0
        while true {
            do {
                try await opsWorker.run { try ConsumerCore.commitSync(client: client, positions: positions) }
                core.metrics.commits.increment()
                return
            } catch let error as KafkaError where error.isRetriable && attempt < 5 {
                attempt += 1
                logger.debug("kafka commit failed, retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                try await Task.sleep(for: .milliseconds(50 << attempt))
            } catch {
                core.metrics.commitErrors.increment()
                throw error
            }
        }
    }

    /// Commits the positions after `messages` (highest offset + 1 per partition) and waits.
    public func commit(messages: some Sequence<KafkaConsumerMessage>) async throws {
        try await commit(TopicPartitionOffset.nextOffsets(after: messages))
    }

    /// Starts a commit and returns at once; failures are logged and counted
    /// (`kafka_consumer_commit_errors_total`). A later commit supersedes an earlier one.
    public func commitAsync(_ positions: [TopicPartitionOffset]) throws {
        guard !positions.isEmpty else { return }
        try core.ensureOpen(context: "commit")
        let list = PartitionList.make(positions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_commit(client.handle, list, 1)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            core.metrics.commitErrors.increment()
            throw KafkaError(code, context: "commit offsets (async)")
        }
    }

    /// Stores `positions` (next offsets to consume) for librdkafka to commit: every
    /// `autoCommitInterval`, and before partitions are revoked or the consumer closes. Costs no
    /// request and wakes no thread. A position of a partition no longer assigned is refused
    /// (its new owner replays from the last commit).
    /// - Throws: when `autoCommitInterval` is not set, or a position was refused.
    public func storeOffsets(_ positions: [TopicPartitionOffset]) throws {
        guard !positions.isEmpty else { return }
        try core.ensureOpen(context: "store offsets")
        guard configuration.autoCommitInterval != nil else {
            throw KafkaError.state("stored offsets are committed only with autoCommitInterval set", context: "store offsets")
        }
        let list = PartitionList.make(positions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_offsets_store(client.handle, list)
        let refused = PartitionList.positions(list).first { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR, refused == nil else {
            core.metrics.commitErrors.increment()
            let partition = refused.map { " (\($0.position.topicPartition))" } ?? ""
            throw KafkaError(refused?.error ?? code, context: "store offsets\(partition)")
        }
    }

    /// Starts a commit of every offset stored with `storeOffsets` that moved since the last
    /// commit, and returns at once (failures are counted like `commitAsync`'s). For committing
    /// more often than `autoCommitInterval` while busy, without a timer waking an idle consumer.
    public func commitStoredAsync() throws {
        try core.ensureOpen(context: "commit stored offsets")
        let code = rd_kafka_commit(client.handle, nil, 1)
        // _NO_OFFSET: nothing moved since the last commit.
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            core.metrics.commitErrors.increment()
            throw KafkaError(code, context: "commit stored offsets (async)")
        }
    }

    public func commitAsync(messages: some Sequence<KafkaConsumerMessage>) throws {
        try commitAsync(TopicPartitionOffset.nextOffsets(after: messages))
    }

    /// The group's committed offsets for `partitions` (-1001, librdkafka's INVALID, when none).
    public func committedOffsets(for partitions: [TopicPartition], timeout: Duration = .seconds(5)) async throws -> [TopicPartitionOffset] {
        guard !partitions.isEmpty else { return [] }
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        return try await opsWorker.run {
            let list = PartitionList.make(partitions)
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let code = rd_kafka_committed(client.handle, list, milliseconds)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code, context: "fetch committed offsets") }
            return PartitionList.positions(list).map(\.position)
        }
    }

    // MARK: - Flow control

    /// Stops fetching `partitions` (for backpressure) without leaving the group. Messages of
    /// these partitions already fetched locally are discarded and fetched again on `resume`.
    public func pause(_ partitions: [TopicPartition]) throws {
        try changeFlow(partitions, pause: true)
    }

    public func resume(_ partitions: [TopicPartition]) throws {
        try changeFlow(partitions, pause: false)
    }

    private func changeFlow(_ partitions: [TopicPartition], pause: Bool) throws {
        guard !partitions.isEmpty else { return }
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = pause ? rd_kafka_pause_partitions(client.handle, list) : rd_kafka_resume_partitions(client.handle, list)
        let context = pause ? "pause partitions" : "resume partitions"
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(code, context: context) }
        if let failed = PartitionList.positions(list).first(where: { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            throw KafkaError(failed.error, context: "\(context): \(failed.position.topicPartition)")
        }
    }

    // MARK: - Lag

    /// Per assigned partition: high watermark minus this member's position (or the committed
    /// offset before anything was consumed). Uses the watermarks librdkafka caches from fetch
    /// responses and asks the broker only where none is cached yet. Also published as the gauge
    /// `kafka_consumer_lag` (dimensions topic, partition).
    public func lag(timeout: Duration = .seconds(5)) async throws -> [TopicPartition: Int64] {
        let partitions = Array(core.assignment)
        guard !partitions.isEmpty else { return [:] }
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        let lag = try await opsWorker.run { try ConsumerCore.lag(client: client, partitions: partitions, timeoutMilliseconds: milliseconds) }
        for (partition, value) in lag {
            Gauge(label: "kafka_consumer_lag", dimensions: [("topic", partition.topic), ("partition", "\(partition.partition)")]).record(value)
        }
        return lag
    }

    // MARK: - Shutdown

    /// Leaves the group cleanly (revoking partitions; only offsets stored with `storeOffsets` are
    /// committed on the way out, nothing else) and stops the consumer's threads. Later calls to
    /// `poll`/`commit` throw. Safe to call twice.
    public func close() async throws {
        guard core.beginClosing() else { return }
        let client = self.client
        defer {
            core.finish()
            pollWorker.stop()
            opsWorker.stop()
        }
        // On the poll thread: closing serves the final revoke callback.
        let code = try await pollWorker.run { rd_kafka_consumer_close(client.handle).rawValue }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR.rawValue else {
            throw KafkaError(code: KafkaError.Code(rawValue: code), context: "close consumer")
        }
        logger.debug("kafka consumer closed", metadata: ["kafka.client": "\(client.name)"])
    }

    /// Service: runs until graceful shutdown (or cancellation), then closes.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }
}

/// State shared between the consumer, its threads and librdkafka's callbacks.
final class ConsumerCore: Sendable {
    private struct State {
        var assignment: Set<TopicPartition> = []
        /// Bumped on every assignment change, so a poll knows whether to re-check its batch.
        var assignmentVersion: UInt64 = 0
        var closing = false
        var closed = false
        var fatalError: KafkaError?
    }

    private let state = Mutex(State())
    private let events: AsyncStream<KafkaRebalanceEvent>.Continuation
    private let topicNames = TopicNameCache()
    let metrics: ConsumerMetrics
    let logger: Logger

    init(groupID: String, logger: Logger, events: AsyncStream<KafkaRebalanceEvent>.Continuation) {
        self.events = events
        self.logger = logger
        metrics = ConsumerMetrics(groupID: groupID)
    }

    var assignment: Set<TopicPartition> { state.withLock { $0.assignment } }

    /// A manual assignment replaced whatever was assigned.
    func replaceAssignment(_ partitions: Set<TopicPartition>) {
        state.withLock { state in
            state.assignment = partitions
            state.assignmentVersion += 1
        }
    }

    /// close() was called (or is running).
    var isClosed: Bool { state.withLock { $0.closing } }

    func ensureOpen(context: String) throws {
        try state.withLock { state in
            if let fatal = state.fatalError { throw fatal }
            if state.closing { throw KafkaError.state("consumer is closed", context: context) }
        }
    }

    func beginClosing() -> Bool {
        state.withLock { state in
            defer { state.closing = true }
            return !state.closing
        }
    }

    func finish() {
        let alreadyFinished = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        if !alreadyFinished { events.finish() }
    }

    // MARK: Consuming (poll thread)

    func consume(client: RDKafkaClient, maxMessages: Int, timeoutMilliseconds: Int32) throws -> [KafkaConsumerMessage] {
        let versionBefore = state.withLock { $0.assignmentVersion }
        var messages: [KafkaConsumerMessage] = []
        messages.reserveCapacity(min(maxMessages, 4_096))

        // Wait for the first message only; then take what is already fetched without waiting
        // (rd_kafka_consume_batch_queue alone would wait the full timeout to fill the batch).
        if let first = rd_kafka_consumer_poll(client.handle, timeoutMilliseconds) {
            try take(first, into: &messages)
        }
        if maxMessages > messages.count, let queue = client.consumerQueue {
            let capacity = maxMessages - messages.count
            let batch = UnsafeMutablePointer<UnsafeMutablePointer<rd_kafka_message_t>?>.allocate(capacity: capacity)
            defer { batch.deallocate() }
            let count = rd_kafka_consume_batch_queue(queue, 0, batch, capacity)
            var failure: (any Error)?
            for index in 0..<max(0, count) {
                guard let message = batch[index] else { continue }
                if failure != nil {
                    rd_kafka_message_destroy(message)
                    continue
                }
                do { try take(message, into: &messages) } catch { failure = error }
            }
            if let failure { throw failure }
        }

        // A revoke served during this call: drop what belongs to partitions we no longer own,
        // so they are not processed (and committed) by a member that lost them.
        let (versionAfter, owned) = state.withLock { ($0.assignmentVersion, $0.assignment) }
        if versionAfter != versionBefore {
            let before = messages.count
            messages.removeAll { !owned.contains(TopicPartition(topic: $0.topic, partition: $0.partition)) }
            if messages.count != before {
                logger.info("kafka consumer dropped messages of revoked partitions", metadata: ["count": "\(before - messages.count)"])
            }
        }
        if !messages.isEmpty { metrics.received.increment(by: Int64(messages.count)) }
        return messages
    }

    /// Copies one message out of librdkafka's buffer and releases it.
    private func take(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>, into messages: inout [KafkaConsumerMessage]) throws {
        defer { rd_kafka_message_destroy(pointer) }
        let raw = pointer.pointee
        let topic = topicNames.name(of: raw.rkt)
        guard raw.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            try handleMessageError(raw, topic: topic, pointer: pointer)
            return
        }
        var headers: [KafkaHeader] = []
        var headerList: OpaquePointer?
        if rd_kafka_message_headers(pointer, &headerList) == RD_KAFKA_RESP_ERR_NO_ERROR, let headerList {
            let count = rd_kafka_header_cnt(headerList)
            headers.reserveCapacity(count)
            for index in 0..<count {
                var name: UnsafePointer<CChar>?
                var value: UnsafeRawPointer?
                var size = 0
                guard rd_kafka_header_get_all(headerList, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR, let name else { continue }
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                headers.append(KafkaHeader(key: String(cString: name), value: bytes))
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(pointer, &timestampType)
        messages.append(KafkaConsumerMessage(
            topic: topic,
            partition: raw.partition,
            offset: raw.offset,
            key: raw.key.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.key_len)) },
            value: raw.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.len)) } ?? [],
            headers: headers,
            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || timestamp < 0 ? nil : timestamp
        ))
    }

    private func handleMessageError(_ raw: rd_kafka_message_t, topic: String, pointer: UnsafeMutablePointer<rd_kafka_message_t>) throws {
        if raw.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
        let text = rd_kafka_message_errstr(pointer).map { String(cString: $0) }
        let error = KafkaError(raw.err, context: topic.isEmpty ? "consume" : "consume \(topic)[\(raw.partition)]", message: text)
        metrics.errors.increment()
        if raw.err == RD_KAFKA_RESP_ERR__FATAL {
            let fatal = KafkaError(code: .fatal, message: text, context: "consume", isFatal: true)
            state.withLock { $0.fatalError = fatal }
            logger.critical("kafka consumer fatal error", metadata: ["error": "\(fatal)"])
            throw fatal
        }
        // Transient (broker down, topic not yet created, ...): librdkafka keeps retrying.
        logger.warning("kafka consumer error (retrying)", metadata: ["error": "\(error)"])
    }

    // MARK: Callbacks (poll thread)

    func handleRebalance(_ rk: OpaquePointer, _ code: rd_kafka_resp_err_t, _ list: PartitionList.Pointer?) {
        let partitions = PartitionList.partitions(list).sorted()
        let cooperative = rd_kafka_rebalance_protocol(rk).map { String(cString: $0) } == "COOPERATIVE"
        metrics.rebalances.increment()
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            // Offsets stay INVALID, so each partition starts at the group's committed offset.
            if cooperative {
                if let error = rd_kafka_incremental_assign(rk, list) {
                    logger.error("kafka incremental assign failed", metadata: ["error": "\(KafkaError(consuming: error, context: "assign"))"])
                }
            } else {
                let result = rd_kafka_assign(rk, list)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.error("kafka assign failed", metadata: ["error": "\(KafkaError(result, context: "assign"))"])
                }
            }
            state.withLock { state in
                if !cooperative { state.assignment.removeAll() }
                state.assignment.formUnion(partitions)
                state.assignmentVersion += 1
            }
            logger.info("kafka partitions assigned", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
            events.yield(.assigned(partitions))

        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            if rd_kafka_assignment_lost(rk) != 0 {
                logger.warning("kafka partitions lost (session timed out); their uncommitted work will be redelivered")
            }
            state.withLock { state in
                state.assignment.subtract(partitions)
                if !cooperative { state.assignment.removeAll() }
                state.assignmentVersion += 1
            }
            if cooperative {
                if let error = rd_kafka_incremental_unassign(rk, list) {
                    logger.error("kafka incremental unassign failed", metadata: ["error": "\(KafkaError(consuming: error, context: "unassign"))"])
                }
            } else {
                _ = rd_kafka_assign(rk, nil)
            }
            logger.info("kafka partitions revoked", metadata: ["partitions": "\(partitions.map(\.description).joined(separator: ","))"])
            events.yield(.revoked(partitions))

        default:
            logger.error("kafka rebalance error; dropping assignment", metadata: ["error": "\(KafkaError(code, context: "rebalance"))"])
            let dropped = state.withLock { state in
                defer {
                    state.assignment.removeAll()
                    state.assignmentVersion += 1
                }
                return state.assignment.sorted()
            }
            _ = rd_kafka_assign(rk, nil)
            if !dropped.isEmpty { events.yield(.revoked(dropped)) }
        }
    }

    func handleCommitResult(_ code: rd_kafka_resp_err_t, _ offsets: PartitionList.Pointer?) {
        // _NO_OFFSET: nothing to commit; not a failure.
        if code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR__NO_OFFSET { return }
        metrics.commitErrors.increment()
        logger.warning("kafka offset commit failed", metadata: ["error": "\(KafkaError(code, context: "commit offsets"))"])
    }

    func handleClientError(_ error: KafkaError) {
        if error.isFatal {
            state.withLock { $0.fatalError = error }
            logger.critical("kafka consumer fatal error; consumer unusable", metadata: ["error": "\(error)"])
        } else {
            logger.warning("kafka consumer error (retrying)", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Blocking operations (ops thread)

    static func commitSync(client: RDKafkaClient, positions: [TopicPartitionOffset]) throws {
        let list = PartitionList.make(positions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let code = rd_kafka_commit(client.handle, list, 0)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(code, context: "commit offsets \(positions.map(\.description).joined(separator: ","))")
        }
        if let failed = PartitionList.positions(list).first(where: { $0.error != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            throw KafkaError(failed.error, context: "commit offset \(failed.position)")
        }
    }

    static func lag(client: RDKafkaClient, partitions: [TopicPartition], timeoutMilliseconds: Int32) throws -> [TopicPartition: Int64] {
        let list = PartitionList.make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = rd_kafka_position(client.handle, list)
        var positions: [TopicPartition: Int64] = [:]
        for entry in PartitionList.positions(list) where entry.position.offset >= 0 {
            positions[entry.position.topicPartition] = entry.position.offset
        }
        let unknown = partitions.filter { positions[$0] == nil }
        if !unknown.isEmpty {
            let committed = PartitionList.make(unknown)
            defer { rd_kafka_topic_partition_list_destroy(committed) }
            if rd_kafka_committed(client.handle, committed, timeoutMilliseconds) == RD_KAFKA_RESP_ERR_NO_ERROR {
                for entry in PartitionList.positions(committed) where entry.position.offset >= 0 {
                    positions[entry.position.topicPartition] = entry.position.offset
                }
            }
        }
        var lag: [TopicPartition: Int64] = [:]
        for partition in partitions {
            var low: Int64 = -1
            var high: Int64 = -1
            var code = rd_kafka_get_watermark_offsets(client.handle, partition.topic, partition.partition, &low, &high)
            if code != RD_KAFKA_RESP_ERR_NO_ERROR || high < 0 || low < 0 {
                code = rd_kafka_query_watermark_offsets(client.handle, partition.topic, partition.partition, &low, &high, timeoutMilliseconds)
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError(code, context: "query watermarks of \(partition)")
                }
            }
            // Nothing consumed or committed yet: everything retained is still ahead of us.
            let position = positions[partition] ?? low
            lag[partition] = max(0, high - position)
        }
        return lag
    }
}

struct ConsumerMetrics: Sendable {
    let received: Counter
    let commits: Counter
    let commitErrors: Counter
    let errors: Counter
    let rebalances: Counter

    init(groupID: String) {
        let dimensions = [("group", groupID)]
        received = Counter(label: "kafka_consumer_messages_received_total", dimensions: dimensions)
        commits = Counter(label: "kafka_consumer_commits_total", dimensions: dimensions)
        commitErrors = Counter(label: "kafka_consumer_commit_errors_total", dimensions: dimensions)
        errors = Counter(label: "kafka_consumer_errors_total", dimensions: dimensions)
        rebalances = Counter(label: "kafka_consumer_rebalances_total", dimensions: dimensions)
    }
}
