import DequeModule
import Synchronization

/// A fixed set of connections checked out exclusively. Callers that find none free wait (FIFO)
/// for one to be returned; at most `maxWaiters` may wait, later callers get
/// `RedisError.poolExhausted`, so the queue is bounded. Waiting is cancellable.
final class ConnectionPool: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<RedisConnection, any Error>
    }

    private struct State {
        var idle: [RedisConnection]
        var waiters: Deque<Waiter> = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    private let state: Mutex<State>
    private let maxWaiters: Int

    init(connections: [RedisConnection], maxWaiters: Int) {
        state = Mutex(State(idle: connections))
        self.maxWaiters = maxWaiters
    }

    func acquire() async throws -> RedisConnection {
        // Fast path without allocating a continuation.
        enum Fast { case connection(RedisConnection), wait, error(RedisError) }
        let fast: Fast = state.withLock { state in
            if state.closed { return .error(.shutdown) }
            if let connection = state.idle.popLast() { return .connection(connection) }
            if state.waiters.count >= maxWaiters { return .error(.poolExhausted(waiting: state.waiters.count)) }
            return .wait
        }
        switch fast {
        case .connection(let connection): return connection
        case .error(let error): throw error
        case .wait: break
        }

        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RedisConnection, any Error>) in
                enum Outcome { case connection(RedisConnection), error(any Error), queued }
                let outcome: Outcome = state.withLock { state in
                    if state.closed { return .error(RedisError.shutdown) }
                    if Task.isCancelled { return .error(CancellationError()) }
                    if let connection = state.idle.popLast() { return .connection(connection) }
                    if state.waiters.count >= maxWaiters {
                        return .error(RedisError.poolExhausted(waiting: state.waiters.count))
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .queued
                }
                switch outcome {
                case .connection(let connection): continuation.resume(returning: connection)
                case .error(let error): continuation.resume(throwing: error)
                case .queued: break
                }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    func release(_ connection: RedisConnection) {
        enum Next { case waiter(Waiter), idle, closed }
        let next: Next = state.withLock { state in
            if state.closed { return .closed }
            if let waiter = state.waiters.popFirst() { return .waiter(waiter) }
            state.idle.append(connection)
            return .idle
        }
        switch next {
        case .waiter(let waiter): waiter.continuation.resume(returning: connection)
        case .idle: break
        case .closed: connection.close()
        }
    }

    /// Fails all waiters and refuses new acquisitions. Returns the idle connections; checked-out
    /// ones are closed when they are released.
    func close() -> [RedisConnection] {
        let (waiters, idle): (Deque<Waiter>, [RedisConnection]) = state.withLock { state in
            state.closed = true
            let result = (state.waiters, state.idle)
            state.waiters.removeAll()
            state.idle.removeAll()
            return result
        }
        for waiter in waiters { waiter.continuation.resume(throwing: RedisError.shutdown) }
        return idle
    }

    var isClosed: Bool { state.withLock { $0.closed } }
}
