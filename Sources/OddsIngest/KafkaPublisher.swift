import Contracts
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// Publishes routed frames through the idempotent producer and makes sure each one is
/// acknowledged: a failed delivery is re-enqueued (capped backoff, forever) instead of dropped.
///
/// At most `window.capacity` frames are unacknowledged at once; `publish` waits for a slot, so a
/// slow or absent Kafka stops the feed reader (and, through TCP, the supplier).
///
/// As a Service it reads the producer's delivery reports; on graceful shutdown it waits (up to
/// `drainTimeout`) until every frame handed to it is acknowledged, then returns so the producer
/// (listed before it in the group) can flush and close.
final class KafkaPublisher: Service, Sendable {
    private struct Pending: Sendable {
        let routed: RoutedFrame
        /// The frame's entry in `progress`, marked done once Kafka acknowledges it.
        let ticket: ResumeTracker.Ticket?
        let firstAttempt: ContinuousClock.Instant
        var attempts: Int
    }

    /// The producer can no longer deliver (a fatal librdkafka error such as an idempotence
    /// violation, or it was shut down). Ingest must stop: a frame read now could not be published.
    struct Unusable: Error, CustomStringConvertible {
        let underlying: any Error
        var description: String { "kafka producer unusable: \(underlying)" }
    }

    private struct State {
        var unusable: Unusable?
        var pending: [KafkaMessageID: Pending] = [:]
        /// Reports that arrived before `publish` recorded their id (enqueue returns after librdkafka
        /// took the message, and the broker may answer first).
        var earlyReports: [KafkaMessageID: KafkaDeliveryReport] = [:]
        var retriesWaiting = 0
    }

    let producer: KafkaProducer
    let window: InFlightWindow
    /// How far Kafka holds the feed (the reader stamps it on every message).
    let progress: FeedProgress
    let metrics: IngestMetrics
    let logger: Logger
    let drainTimeout: Duration
    /// A frame unacknowledged for longer than this makes `/readyz` report Kafka as not ready.
    let stallThreshold: Duration
    private let state = Mutex(State())
    private let retries: AsyncStream<Pending>
    private let retryQueue: AsyncStream<Pending>.Continuation

    init(producer: KafkaProducer, window: InFlightWindow, progress: FeedProgress, metrics: IngestMetrics, logger: Logger,
         drainTimeout: Duration = .seconds(30), stallThreshold: Duration = .seconds(5)) {
        self.producer = producer
        self.window = window
        self.progress = progress
        self.metrics = metrics
        self.logger = logger
        self.drainTimeout = drainTimeout
        self.stallThreshold = stallThreshold
        // Unbounded type, bounded in fact: only frames holding a window slot are ever queued.
        (retries, retryQueue) = AsyncStream.makeStream(of: Pending.self)
    }

    /// Hands `routed` to Kafka; returns once librdkafka holds it (not once it is acknowledged).
    /// Waits while the in-flight window is full. Throws only when the producer is shut down or
    /// the task is cancelled (shutdown), never because Kafka is unavailable.
    func publish(_ routed: RoutedFrame, ticket: ResumeTracker.Ticket? = nil) async throws {
        if let unusable = state.withLock({ $0.unusable }) { throw unusable }
        try await window.acquire()
        metrics.inFlight.record(window.inFlight)
        do {
            try await enqueue(Pending(routed: routed, ticket: ticket, firstAttempt: .now, attempts: 1))
        } catch {
            window.release()
            throw markUnusableIfFatal(error)
        }
    }

    /// Enqueue only fails when the producer is shut down or hit a fatal error; both are final.
    private func markUnusableIfFatal(_ error: any Error) -> any Error {
        guard error is KafkaError else { return error }
        let unusable = Unusable(underlying: error)
        state.withLock { state in
            if state.unusable == nil { state.unusable = unusable }
        }
        return unusable
    }

    private func enqueue(_ pending: Pending) async throws {
        let id = try await producer.enqueue(pending.routed.message)
        let early: KafkaDeliveryReport? = state.withLock { state in
            if let report = state.earlyReports.removeValue(forKey: id) { return report }
            state.pending[id] = pending
            return nil
        }
        if let early { settle(pending, report: early) }
    }

    /// Frames handed to `publish` and not yet acknowledged (each holds a window slot from
    /// `publish` until its successful delivery, retries included).
    var unacknowledgedCount: Int { window.inFlight }

    /// False while a delivery failed and waits for its retry, or a frame waits too long.
    var isHealthy: Bool {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard state.retriesWaiting == 0 else { return false }
            return !state.pending.values.contains { now - $0.firstAttempt > stallThreshold }
        }
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.readDeliveryReports() }
            group.addTask { await self.retryFailedDeliveries() }
            try? await gracefulShutdown()
            let deadline = ContinuousClock.now + drainTimeout
            while unacknowledgedCount > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let left = unacknowledgedCount
            if left > 0 {
                logger.error("shutting down with frames Kafka has not acknowledged", metadata: ["frames": "\(left)"])
            } else {
                logger.info("every frame read from the supplier is acknowledged by Kafka")
            }
            retryQueue.finish()
            group.cancelAll()
        }
    }

    private func readDeliveryReports() async {
        for await report in producer.deliveryReports {
            guard let id = report.id else { continue }
            let pending: Pending? = state.withLock { state in
                if let pending = state.pending.removeValue(forKey: id) { return pending }
                state.earlyReports[id] = report
                return nil
            }
            if let pending { settle(pending, report: report) }
        }
    }

    private func settle(_ pending: Pending, report: KafkaDeliveryReport) {
        if let error = report.error {
            metrics.deliveryFailures.increment()
            logger.warning("kafka delivery failed; will retry", metadata: [
                "topic": "\(report.topic)", "attempt": "\(pending.attempts)", "error": "\(error)",
            ])
            state.withLock { $0.retriesWaiting += 1 }
            retryQueue.yield(pending)
            return
        }
        metrics.publishLatency.recordNanoseconds(
            Int64((ContinuousClock.now - pending.firstAttempt) / .nanoseconds(1)))
        switch pending.routed {
        case .publish:
            metrics.published.increment()
        case .deadLetter(_, let reason):
            metrics.deadLettered[reason.primaryCode]?.increment()
        case .unreadable:
            metrics.unreadableDeadLettered.increment()
        }
        if let ticket = pending.ticket, let claim = progress.markDone(ticket) {
            metrics.claimSeq.record(Int(claim.seq))
        }
        window.release()
        metrics.inFlight.record(window.inFlight)
    }

    /// Re-enqueues failed deliveries in the order they failed, with capped exponential backoff
    /// between consecutive failures (reset by a successful re-enqueue round).
    private func retryFailedDeliveries() async {
        var backoff = ReconnectBackoff(minimum: .milliseconds(100), maximum: .seconds(5))
        for await var pending in retries {
            try? await Task.sleep(for: backoff.nextDelay())
            pending.attempts += 1
            do {
                try await enqueue(pending)
                state.withLock { $0.retriesWaiting -= 1 }
            } catch {
                state.withLock { $0.retriesWaiting -= 1 }
                let final = markUnusableIfFatal(error)
                logger.critical("cannot re-enqueue a frame; it is lost", metadata: ["error": "\(final)"])
                window.release()
                continue
            }
            if state.withLock({ $0.retriesWaiting == 0 }) { backoff.reset() }
        }
    }
}
