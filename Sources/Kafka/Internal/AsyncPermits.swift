import DequeModule
import Synchronization

/// A counting semaphore for async code: bounds the messages a producer has in flight. Waiters
/// suspend (no spinning) and are resumed in FIFO order as permits come back.
final class AsyncPermits: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        var waiters: Deque<Waiter> = []
        var nextWaiterID: UInt64 = 0
        var failure: KafkaError?
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        state = Mutex(State(available: count))
    }

    var available: Int { state.withLock { $0.available } }

    func acquire() async throws {
        // Fast path without allocating a continuation.
        let acquired: Bool = try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard state.available > 0, state.waiters.isEmpty else { return false }
            state.available -= 1
            return true
        }
        if acquired { return }

        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Bool, any Error> = state.withLock { state in
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.available > 0 && state.waiters.isEmpty {
                        state.available -= 1
                        return .success(true)
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let cancelled: CheckedContinuation<Void, any Error>? = state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    func release(_ count: Int = 1) {
        guard count > 0 else { return }
        let woken: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            state.available += count
            var woken: [CheckedContinuation<Void, any Error>] = []
            while state.available > 0, let waiter = state.waiters.popFirst() {
                state.available -= 1
                woken.append(waiter.continuation)
            }
            return woken
        }
        for continuation in woken { continuation.resume() }
    }

    /// Fails every current and future `acquire` (used at shutdown).
    func fail(with error: KafkaError) {
        let waiters: Deque<Waiter> = state.withLock { state in
            state.failure = error
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
    }
}

/// Wakes producers that hit librdkafka's full local queue once the poll thread has served
/// delivery reports (which is what frees queue space). A generation number closes the race
/// between "got _QUEUE_FULL" and "started waiting".
final class QueueSpaceSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var generation: UInt64 { state.withLock { $0.generation } }

    /// Returns once the generation moved past `generation` (immediately if it already has).
    func wait(after generation: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waitNow: Bool = state.withLock { state in
                    guard state.generation == generation, !Task.isCancelled else { return false }
                    state.waiters.append(continuation)
                    return true
                }
                if !waitNow { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
    }

    func signal() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }
}
