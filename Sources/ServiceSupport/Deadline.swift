import Synchronization

/// Deadlines for awaits that may never finish on their own.
///
/// Some awaits ignore cancellation: a WebSocket client waiting for the upgrade answer of a
/// server that half-closed the connection waits on an event-loop future forever. A plain
/// timeout inside a task group would still wait for such a child. These helpers run the work in
/// its own task, and when the deadline passes they throw at once, cancel the work and stop
/// waiting for it (it ends by itself, or at process exit).
public enum Deadline {
    public struct Exceeded: Error, CustomStringConvertible {
        public let what: String
        public let timeout: Duration
        public var description: String { "timed out after \(timeout) waiting for \(what)" }
    }

    /// Calling it says the guarded first phase is over: the deadline no longer applies.
    public struct Started: Sendable {
        fileprivate let disarm: @Sendable () -> Void
        public func callAsFunction() { disarm() }
    }

    /// Runs `body`; unless it calls its `Started` within `timeout`, throws `Exceeded` naming
    /// `what`. After `Started` the body runs as long as it needs.
    public static func untilStarted<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable (Started) async throws -> T
    ) async throws -> T {
        let outcome = RacedOutcome<T>()
        let timer = Mutex<Task<Void, Never>?>(nil)
        let started = Started { timer.withLock { $0?.cancel() } }
        let work = Task { try await body(started) }
        let sleeper = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            if outcome.resolve(.failure(Exceeded(what: what, timeout: timeout))) { work.cancel() }
        }
        timer.withLock { $0 = sleeper }
        Task {
            let result = await work.result
            sleeper.cancel()
            outcome.resolve(result)
        }
        return try await withTaskCancellationHandler {
            try await outcome.value()
        } onCancel: {
            work.cancel()
        }
    }

    /// Runs `body` for at most `timeout` in all.
    public static func run<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await untilStarted(what, timeout: timeout) { _ in try await body() }
    }
}

/// The first of two racers (the work, the deadline) decides; the other is ignored.
private final class RacedOutcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var decided: Result<T, any Error>?
    }

    private let state = Mutex(State())

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let early: Result<T, any Error>? = state.withLock { state in
                if let decided = state.decided { return decided }
                state.continuation = continuation
                return nil
            }
            if let early { continuation.resume(with: early) }
        }
    }

    /// True when this call decided the outcome.
    @discardableResult
    func resolve(_ result: Result<T, any Error>) -> Bool {
        let (decided, waiter): (Bool, CheckedContinuation<T, any Error>?) = state.withLock { state in
            guard state.decided == nil else { return (false, nil) }
            state.decided = result
            defer { state.continuation = nil }
            return (true, state.continuation)
        }
        waiter?.resume(with: result)
        return decided
    }
}
