import Contracts
import Synchronization

/// Turns concurrent single-event reads into batched ones: requests that arrive while a batch
/// is in flight wait for the next batch, which asks the store for all of them at once (one
/// pipelined Redis round trip instead of one per request, and one answer shared by requests
/// for the same event). A request is only ever answered by a read issued after it arrived, so
/// batching never makes an answer older than the store was at that moment.
public final class CoalescingOddsReader: OddsReadRepository, Sendable {
    typealias Waiter = CheckedContinuation<[OddsUpdate], any Error>

    private struct State {
        var pending: [String: [Waiter]] = [:]
        var pendingCount = 0
        var batchesInFlight = 0
    }

    private let store: any OddsReadRepository
    private let maxBatchesInFlight: Int
    private let maxEventsPerBatch: Int
    private let state = Mutex(State())

    /// - Parameters:
    ///   - maxBatchesInFlight: concurrent batches (e.g. the Redis pool size): a new batch starts
    ///     as soon as one is free, so a lone request never waits for another's round trip.
    ///   - maxEventsPerBatch: bounds one pipeline.
    public init(store: any OddsReadRepository, maxBatchesInFlight: Int = 4, maxEventsPerBatch: Int = 256) {
        self.store = store
        self.maxBatchesInFlight = max(1, maxBatchesInFlight)
        self.maxEventsPerBatch = max(1, maxEventsPerBatch)
    }

    public func currentOdds(eventId: String) async throws -> [OddsUpdate] {
        try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let startBatch = state.withLock { state -> Bool in
                state.pending[eventId, default: []].append(waiter)
                state.pendingCount += 1
                guard state.batchesInFlight < maxBatchesInFlight else { return false }
                state.batchesInFlight += 1
                return true
            }
            if startBatch { Task { await self.drain() } }
        }
    }

    /// Runs batches until nothing is pending.
    private func drain() async {
        while true {
            let batch = state.withLock { state -> [String: [Waiter]]? in
                guard !state.pending.isEmpty else {
                    state.batchesInFlight -= 1
                    return nil
                }
                if state.pending.count <= maxEventsPerBatch {
                    defer { state.pending = [:]; state.pendingCount = 0 }
                    return state.pending
                }
                var taken: [String: [Waiter]] = [:]
                for eventId in state.pending.keys.prefix(maxEventsPerBatch) {
                    let waiters = state.pending.removeValue(forKey: eventId) ?? []
                    state.pendingCount -= waiters.count
                    taken[eventId] = waiters
                }
                return taken
            }
            guard let batch else { return }
            do {
                let answers = try await store.currentOdds(eventIds: Array(batch.keys))
                for (eventId, waiters) in batch {
                    let answer = answers[eventId] ?? []
                    for waiter in waiters { waiter.resume(returning: answer) }
                }
            } catch {
                for waiters in batch.values {
                    for waiter in waiters { waiter.resume(throwing: error) }
                }
            }
        }
    }

    public func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        try await store.currentOdds(eventIds: eventIds)
    }

    public func events(limit: Int) async throws -> [EventSummary] {
        try await store.events(limit: limit)
    }

    public func isReachable() async -> Bool {
        await store.isReachable()
    }
}
