import DequeModule
import Synchronization

/// Delivery reports of messages produced with `KafkaProducer.enqueue(_:)`.
///
/// Bounded: every unread report holds one of the producer's in-flight permits, so a reader
/// that falls behind slows `enqueue` down instead of letting memory grow. Finishes (returns
/// nil) after the producer shut down and every report was read.
public struct KafkaDeliveryReports: AsyncSequence, Sendable {
    public typealias Element = KafkaDeliveryReport
    public typealias Failure = Never

    let buffer: DeliveryReportBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: DeliveryReportBuffer

        public mutating func next() async -> KafkaDeliveryReport? {
            await buffer.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> KafkaDeliveryReport? {
            await buffer.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(buffer: buffer)
    }
}

final class DeliveryReportBuffer: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<KafkaDeliveryReport?, Never>
    }

    private struct State {
        var reports: Deque<KafkaDeliveryReport> = []
        var waiters: Deque<Waiter> = []
        var nextWaiterID: UInt64 = 0
        var finished = false
    }

    private let state = Mutex(State())
    /// Called for every report handed to a reader; the producer releases a permit there.
    private let onConsumed: @Sendable () -> Void

    init(onConsumed: @escaping @Sendable () -> Void) {
        self.onConsumed = onConsumed
    }

    func push(_ report: KafkaDeliveryReport) {
        let waiter: Waiter? = state.withLock { state in
            if let waiter = state.waiters.popFirst() { return waiter }
            state.reports.append(report)
            return nil
        }
        waiter?.continuation.resume(returning: report)
    }

    func finish() {
        let waiters: Deque<Waiter> = state.withLock { state in
            state.finished = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
    }

    func next() async -> KafkaDeliveryReport? {
        let immediate: (report: KafkaDeliveryReport?, done: Bool) = state.withLock { state in
            if let report = state.reports.popFirst() { return (report, true) }
            if state.finished { return (nil, true) }
            return (nil, false)
        }
        if immediate.done {
            if immediate.report != nil { onConsumed() }
            return immediate.report
        }
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let report: KafkaDeliveryReport? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<KafkaDeliveryReport?, Never>) in
                let ready: (report: KafkaDeliveryReport?, done: Bool) = state.withLock { state in
                    if let report = state.reports.popFirst() { return (report, true) }
                    if state.finished || Task.isCancelled { return (nil, true) }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return (nil, false)
                }
                if ready.done { continuation.resume(returning: ready.report) }
            }
        } onCancel: {
            let cancelled: Waiter? = state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            cancelled?.continuation.resume(returning: nil)
        }
        if report != nil { onConsumed() }
        return report
    }
}
