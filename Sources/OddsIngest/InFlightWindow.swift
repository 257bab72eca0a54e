import Synchronization

/// A counting semaphore bounding the frames read from the supplier but not yet acknowledged by
/// Kafka. When it is full, ingest stops reading the socket, so TCP pushes back on the supplier.
final class InFlightWindow: Sendable {
    struct Cancelled: Error {}

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var available: Int
        // Usually zero or one waiter (the feed reader), so a plain array is enough.
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
    }

    let capacity: Int
    private let state: Mutex<State>

    init(capacity: Int) {
        precondition(capacity > 0, "window capacity must be positive")
        self.capacity = capacity
        state = Mutex(State(available: capacity))
    }

    /// Frames currently in flight.
    var inFlight: Int { capacity - state.withLock { $0.available } }

    /// Takes a slot, waiting (FIFO) while none is free. Throws `Cancelled` if the task is cancelled.
    func acquire() async throws {
        let id: UInt64? = state.withLock { state in
            if state.available > 0 && state.waiters.isEmpty {
                state.available -= 1
                return nil
            }
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelled: Bool = state.withLock { state in
                    if Task.isCancelled { return true }
                    if state.available > 0 && state.waiters.isEmpty {
                        state.available -= 1
                        continuation.resume()
                        return false
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if cancelled { continuation.resume(throwing: Cancelled()) }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: Cancelled())
        }
    }

    /// Frees a slot, handing it straight to the longest waiter if there is one.
    func release() {
        let waiter: Waiter? = state.withLock { state in
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.available = min(capacity, state.available + 1)
            return nil
        }
        waiter?.continuation.resume()
    }
}
