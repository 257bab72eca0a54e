import Atomics
import CRDKafka
import DequeModule
import Dispatch
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// An idempotent Kafka producer over librdkafka.
///
/// - `send(_:)` returns once the broker acknowledged the message (or throws its error).
/// - `enqueue(_:)` is the high-throughput path: it returns once librdkafka accepted the
///   message; its delivery report arrives on `deliveryReports`, which must be consumed
///   (unread reports count against `maxInFlightMessages`, so the sequence is bounded).
///
/// Both wait, never drop, when the in-flight bound or librdkafka's local queue is full.
/// A dedicated thread polls librdkafka for delivery reports; `flush` and shutdown run on a
/// second dedicated thread, so no blocking call ever runs on Swift's cooperative pool.
public final class KafkaProducer: Service, Sendable {
    public let configuration: KafkaProducerConfiguration
    /// Reports of messages handed to `enqueue`, in delivery order per partition. Bounded:
    /// unread reports hold in-flight permits. Finishes after `shutdown`.
    public let deliveryReports: KafkaDeliveryReports

    private let client: RDKafkaClient
    private let core: ProducerCore
    private let pollThread: PollThread
    private let worker: BlockingWorker
    private let logger: Logger

    public init(configuration: KafkaProducerConfiguration, logger: Logger = Logger(label: "kafka.producer")) throws {
        let core = ProducerCore(inFlightLimit: configuration.inFlightLimit, clientID: configuration.clientID, logger: logger)
        let callbacks = RDKafkaCallbacks(
            logger: logger,
            onDelivery: { message in core.handleDelivery(message) },
            onError: { error in core.handleClientError(error) }
        )
        let client = try RDKafkaClient(type: RD_KAFKA_PRODUCER, properties: configuration.librdkafkaProperties, callbacks: callbacks)
        self.configuration = configuration
        self.core = core
        self.client = client
        self.logger = logger
        self.deliveryReports = KafkaDeliveryReports(buffer: core.reports)
        self.worker = BlockingWorker(name: "kafka-prod-ops")
        self.pollThread = PollThread(name: "kafka-prod-poll") {
            // rd_kafka_poll serves delivery reports and client errors; its timeout bounds how
            // long a shutdown waits for this thread.
            let served = rd_kafka_poll(client.handle, 100)
            if served > 0 { core.queueSpace.signal() }
        }
        logger.debug("kafka producer started", metadata: ["kafka.client": "\(client.name)", "kafka.bootstrap": "\(configuration.bootstrapServers)"])
    }

    deinit {
        pollThread.requestStop()
        core.permits.fail(with: KafkaError.state("producer released", context: "produce"))
        core.reports.finish()
    }

    /// Produces `message` and waits for the broker's acknowledgement.
    /// - Throws: `KafkaError` if the message could not be delivered within `deliveryTimeout`.
    public func send(_ message: KafkaProducerMessage) async throws -> KafkaDeliveryReport {
        try core.ensureOpen(context: "send")
        try await core.permits.acquire()
        let promise = DeliveryPromise()
        let opaque = Unmanaged.passRetained(promise)
        do {
            try await produce(message, opaqueBits: UInt(bitPattern: opaque.toOpaque()))
        } catch {
            // librdkafka did not take the message, so no delivery report will release these.
            opaque.release()
            core.permits.release()
            throw error
        }
        // Deliberately not cancellable: once librdkafka has the message its report will come
        // (at the latest after `deliveryTimeout`), and the caller must learn the outcome.
        let report = await promise.value
        if let error = report.error { throw error }
        return report
    }

    /// Hands `message` to librdkafka and returns without waiting for the broker. The outcome
    /// arrives on `deliveryReports` with the returned id.
    @discardableResult
    public func enqueue(_ message: KafkaProducerMessage) async throws -> KafkaMessageID {
        try core.ensureOpen(context: "enqueue")
        try await core.permits.acquire()
        let id = core.nextMessageID()
        do {
            // Odd opaque values mark enqueued messages; `send` uses (even, aligned) pointers.
            try await produce(message, opaqueBits: UInt(id) << 1 | 1)
        } catch {
            core.permits.release()
            throw error
        }
        return KafkaMessageID(rawValue: id)
    }

    /// Waits until every message handed to librdkafka so far has been reported.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let client = self.client
        let milliseconds = timeout.kafkaMilliseconds
        let (code, remaining) = try await worker.run {
            let code = rd_kafka_flush(client.handle, milliseconds)
            return (code.rawValue, rd_kafka_outq_len(client.handle))
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR.rawValue else {
            throw KafkaError(
                code: KafkaError.Code(rawValue: code),
                message: "\(remaining) message(s) or request(s) still in flight after \(timeout)",
                context: "flush"
            )
        }
    }

    /// How often a producer call had to wait because librdkafka's local queue was full.
    public var queueFullWaitCount: Int { Int(core.queueFullWaits.load(ordering: .relaxed)) }

    /// Messages and requests librdkafka still holds (queued, in flight, or unreported).
    public var outstandingCount: Int { Int(rd_kafka_outq_len(client.handle)) }

    /// Stops accepting messages, waits up to `timeout` for outstanding ones, fails (and reports)
    /// whatever is left, then stops the poll thread and finishes `deliveryReports`.
    /// Safe to call more than once.
    public func shutdown(timeout: Duration = .seconds(30)) async {
        guard core.beginClosing() else { return }
        // Nobody may be inside rd_kafka_produceva once we flush, or a late message could be
        // queued with no poll thread left to report it.
        while core.isProducing { try? await Task.sleep(for: .milliseconds(1)) }
        core.permits.fail(with: KafkaError.state("producer is shut down", context: "produce"))
        core.queueSpace.signal()
        do {
            try await flush(timeout: timeout)
        } catch {
            logger.warning("kafka producer flush at shutdown incomplete; purging", metadata: ["error": "\(error)"])
            let client = self.client
            _ = try? await worker.run {
                rd_kafka_purge(client.handle, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
                // Serve the delivery reports of purged messages so every caller gets an answer.
                _ = rd_kafka_flush(client.handle, 2_000)
            }
        }
        let pollThread = self.pollThread
        _ = try? await worker.run { pollThread.stopAndWait() }
        core.reports.finish()
        worker.stop()
        logger.debug("kafka producer shut down", metadata: ["kafka.client": "\(client.name)"])
    }

    /// Service: runs until graceful shutdown (or cancellation), then shuts down.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    // MARK: - Producing

    /// Calls rd_kafka_produceva, waiting (suspended, not spinning) while librdkafka's queue is full.
    private func produce(_ message: KafkaProducerMessage, opaqueBits: UInt) async throws {
        while true {
            let generation = core.queueSpace.generation
            let code = try core.produceNow(message, opaqueBits: opaqueBits, client: client)
            if code == nil { return }
            core.metrics.queueFull.increment()
            core.queueFullWaits.wrappingIncrement(ordering: .relaxed)
            await core.queueSpace.wait(after: generation)
            try Task.checkCancellation()
            try core.ensureOpen(context: "produce")
        }
    }
}

/// State shared between the producer, its poll thread and librdkafka's callbacks.
final class ProducerCore: @unchecked Sendable {
    // No reference to the client: the client's callbacks point here, so that would be a cycle.
    let permits: AsyncPermits
    let queueSpace = QueueSpaceSignal()
    let reports: DeliveryReportBuffer
    private let topicNames = TopicNameCache()
    let metrics: ProducerMetrics
    let logger: Logger
    private let messageIDs = ManagedAtomic<UInt64>(0)
    let queueFullWaits = ManagedAtomic<UInt64>(0)
    private let lastFailureLog = ManagedAtomic<UInt64>(0)
    private let suppressedFailureLogs = ManagedAtomic<UInt64>(0)
    // Hot-path state as atomics (one produce call per message). `closing` and
    // `activeProduceCalls` are sequentially consistent so that after shutdown sets `closing`
    // and sees no active call, no produce call can still reach librdkafka.
    private let closing = ManagedAtomic(false)
    private let activeProduceCalls = ManagedAtomic(0)
    private let hasFatalError = ManagedAtomic(false)
    private let fatalError = Mutex<KafkaError?>(nil)

    init(inFlightLimit: Int, clientID: String, logger: Logger) {
        let permits = AsyncPermits(inFlightLimit)
        self.permits = permits
        reports = DeliveryReportBuffer(onConsumed: { permits.release() })
        metrics = ProducerMetrics(clientID: clientID)
        self.logger = logger
    }

    func nextMessageID() -> UInt64 { messageIDs.loadThenWrappingIncrement(ordering: .relaxed) }

    func ensureOpen(context: String) throws {
        if hasFatalError.load(ordering: .acquiring), let fatal = fatalError.withLock({ $0 }) { throw fatal }
        if closing.load(ordering: .sequentiallyConsistent) { throw KafkaError.state("producer is shut down", context: context) }
    }

    func beginClosing() -> Bool {
        !closing.exchange(true, ordering: .sequentiallyConsistent)
    }

    var isProducing: Bool { activeProduceCalls.load(ordering: .sequentiallyConsistent) > 0 }

    /// One produce attempt. Returns nil on success, `.queueFull` when librdkafka's queue is full;
    /// throws anything else.
    func produceNow(_ message: KafkaProducerMessage, opaqueBits: UInt, client: RDKafkaClient) throws -> KafkaError.Code? {
        activeProduceCalls.wrappingIncrement(ordering: .sequentiallyConsistent)
        defer { activeProduceCalls.wrappingDecrement(ordering: .sequentiallyConsistent) }
        try ensureOpen(context: "produce")

        let topic = try client.topicHandle(message.topic)
        let error = Self.produceva(client.handle, topic: topic, message: message, opaque: UnsafeMutableRawPointer(bitPattern: opaqueBits))
        guard let error else { return nil }
        let code = rd_kafka_error_code(error)
        if code == RD_KAFKA_RESP_ERR__QUEUE_FULL {
            rd_kafka_error_destroy(error)
            return .queueFull
        }
        metrics.errors.increment()
        throw KafkaError(consuming: error, context: "produce to \(message.topic)")
    }

    /// Builds the rd_kafka_vu_t list on the stack; RD_KAFKA_MSG_F_COPY makes librdkafka copy key
    /// and value, so the Swift arrays only need to live for the duration of the call.
    private static func produceva(_ handle: OpaquePointer, topic: OpaquePointer, message: KafkaProducerMessage, opaque: UnsafeMutableRawPointer?) -> OpaquePointer? {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            let list = rd_kafka_headers_new(message.headers.count)!
            for header in message.headers {
                var name = header.key
                _ = name.withUTF8 { name in
                    header.value.withUnsafeBytes { value in
                        rd_kafka_header_add(list, name.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, name.count, value.baseAddress, value.count)
                    }
                }
            }
            headers = list
        }
        let error: OpaquePointer? = message.value.withUnsafeBytes { value in
            withOptionalBytes(message.key) { key in
                withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { fields in
                    var count = 0
                    func add(_ type: rd_kafka_vtype_t, _ fill: (inout rd_kafka_vu_t) -> Void) {
                        var field = rd_kafka_vu_t()
                        field.vtype = type
                        fill(&field)
                        (fields.baseAddress! + count).initialize(to: field)
                        count += 1
                    }
                    add(RD_KAFKA_VTYPE_RKT) { $0.u.rkt = topic }
                    add(RD_KAFKA_VTYPE_PARTITION) { $0.u.i32 = message.partition ?? RD_KAFKA_PARTITION_UA }
                    add(RD_KAFKA_VTYPE_MSGFLAGS) { $0.u.i = RD_KAFKA_MSG_F_COPY }
                    add(RD_KAFKA_VTYPE_VALUE) {
                        $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                        $0.u.mem.size = value.count
                    }
                    if let key {
                        add(RD_KAFKA_VTYPE_KEY) {
                            $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                            $0.u.mem.size = key.count
                        }
                    }
                    add(RD_KAFKA_VTYPE_OPAQUE) { $0.u.ptr = opaque }
                    if let headers {
                        add(RD_KAFKA_VTYPE_HEADERS) { $0.u.headers = headers }
                    }
                    let result = rd_kafka_produceva(handle, fields.baseAddress, count)
                    fields.baseAddress!.deinitialize(count: count)
                    return result
                }
            }
        }
        // On failure the application still owns the header list.
        if error != nil, let headers { rd_kafka_headers_destroy(headers) }
        return error
    }

    // MARK: - Callbacks (poll thread, or the flush thread)

    func handleDelivery(_ message: UnsafePointer<rd_kafka_message_t>) {
        let raw = message.pointee
        let topic = topicNames.name(of: raw.rkt)
        let latency = rd_kafka_message_latency(message)
        let error: KafkaError? = raw.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(raw.err, context: "deliver to \(topic)")
        let opaqueBits = UInt(bitPattern: raw._private)
        let isEnqueued = opaqueBits & 1 == 1
        let report = KafkaDeliveryReport(
            id: isEnqueued ? KafkaMessageID(rawValue: UInt64(opaqueBits >> 1)) : nil,
            topic: topic,
            partition: raw.partition,
            offset: raw.offset,
            key: raw.key.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.key_len)) },
            error: error,
            latencyMicroseconds: latency
        )
        if let error {
            metrics.errors.increment()
            logDeliveryFailure(error, topic: topic)
        } else {
            metrics.sent.increment()
            if latency >= 0 { metrics.deliveryLatency.recordMicroseconds(latency) }
        }
        if isEnqueued {
            reports.push(report)  // its permit is released when the report is read
        } else if let pointer = raw._private {
            Unmanaged<DeliveryPromise>.fromOpaque(pointer).takeRetainedValue().resolve(report)
            permits.release()
        }
    }

    /// At most one log line per second for failed deliveries (a broker outage fails messages by
    /// the thousand; each one still reaches its caller and the error counter).
    private func logDeliveryFailure(_ error: KafkaError, topic: String) {
        let now = UInt64(DispatchTime.now().uptimeNanoseconds)
        let last = lastFailureLog.load(ordering: .relaxed)
        guard now &- last >= 1_000_000_000 || last == 0,
              lastFailureLog.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else {
            suppressedFailureLogs.wrappingIncrement(ordering: .relaxed)
            return
        }
        let suppressed = suppressedFailureLogs.exchange(0, ordering: .relaxed)
        logger.warning("kafka delivery failed", metadata: ["kafka.topic": "\(topic)", "error": "\(error)", "similar_failures_not_logged": "\(suppressed)"])
    }

    func handleClientError(_ error: KafkaError) {
        if error.isFatal {
            logger.critical("kafka producer fatal error; producer unusable", metadata: ["error": "\(error)"])
            fatalError.withLock { $0 = error }
            hasFatalError.store(true, ordering: .releasing)
            permits.fail(with: error)
            queueSpace.signal()
        } else {
            // Connection loss, broker down, ...: librdkafka retries on its own.
            logger.warning("kafka producer error (retrying)", metadata: ["error": "\(error)"])
        }
    }
}

struct ProducerMetrics: Sendable {
    let sent: Counter
    let errors: Counter
    let queueFull: Counter
    let deliveryLatency: Metrics.Timer

    init(clientID: String) {
        let dimensions = [("client_id", clientID)]
        sent = Counter(label: "kafka_producer_messages_sent_total", dimensions: dimensions)
        errors = Counter(label: "kafka_producer_errors_total", dimensions: dimensions)
        queueFull = Counter(label: "kafka_producer_queue_full_waits_total", dimensions: dimensions)
        deliveryLatency = Metrics.Timer(label: "kafka_producer_delivery_latency_seconds", dimensions: dimensions, preferredDisplayUnit: .milliseconds)
    }
}

/// The answer for one `send`; resolved by the delivery callback, awaited by the caller.
final class DeliveryPromise: Sendable {
    private struct State {
        var report: KafkaDeliveryReport?
        var waiter: CheckedContinuation<KafkaDeliveryReport, Never>?
    }

    private let state = Mutex(State())

    func resolve(_ report: KafkaDeliveryReport) {
        let waiter: CheckedContinuation<KafkaDeliveryReport, Never>? = state.withLock { state in
            state.report = report
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: report)
    }

    var value: KafkaDeliveryReport {
        get async {
            await withCheckedContinuation { continuation in
                let ready: KafkaDeliveryReport? = state.withLock { state in
                    if let report = state.report { return report }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

private func withOptionalBytes<Result>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> Result) -> Result {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}
