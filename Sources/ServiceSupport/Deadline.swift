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

    /// No activity for longer than the watch allows.
    public struct Idle: Error, CustomStringConvertible {
        public let what: String
        public let limit: Duration
        public var description: String { "nothing from \(what) for \(limit)" }
    }

    /// Runs `body`; unless it calls its `Started` within `timeout`, throws `Exceeded` naming
    /// `what`. After `Started` the body runs as long as it needs — or, with `idle`, until the
    /// watch has not been touched for its limit: then it throws `Idle` (a peer that went silent
    /// without closing, e.g. a frozen process behind a half-open connection).
    public static func untilStarted<T: Sendable>(
        _ what: String, timeout: Duration, idle: ActivityWatch? = nil,
        _ body: @escaping @Sendable (Started) async throws -> T
    ) async throws -> T {
        let outcome = RacedOutcome<T>()
        let timer = Mutex<Task<Void, Never>?>(nil)
        let work = WorkHandle<T>()
        let started = Started {
            let watcher: Task<Void, Never>? = idle.map { idle in
                idle.touch()
                // Woken at the next possible idle deadline only, not polling.
                return Task {
                    while !Task.isCancelled {
                        let deadline = idle.lastTouch + idle.limit
                        if idle.isBusy {
                            // The watcher's own side is busy (not waiting for the peer).
                            try? await Task.sleep(for: idle.limit)
                            continue
                        }
                        if deadline <= .now {
                            if outcome.resolve(.failure(Idle(what: idle.what, limit: idle.limit))) { work.cancel() }
                            return
                        }
                        try? await Task.sleep(until: deadline, clock: .continuous)
                    }
                }
            }
            timer.withLock { current in
                current?.cancel()
                current = watcher
            }
        }
        // The deadline is armed before the work starts, so an early `Started` disarms it.
        let sleeper = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            if outcome.resolve(.failure(Exceeded(what: what, timeout: timeout))) { work.cancel() }
        }
        timer.withLock { $0 = sleeper }
        let task = Task { try await body(started) }
        work.set(task)
        Task {
            let result = await task.result
            timer.withLock { $0?.cancel() }
            outcome.resolve(result)
        }
        return try await withTaskCancellationHandler {
            try await outcome.value()
        } onCancel: {
            task.cancel()
        }
    }

    /// Runs `body` for at most `timeout` in all.
    public static func run<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await untilStarted(what, timeout: timeout) { _ in try await body() }
    }
}

/// The work task of a deadline, cancellable from the racers.
private final class WorkHandle<T: Sendable>: Sendable {
    private let task = Mutex<Task<T, any Error>?>(nil)
    func set(_ value: Task<T, any Error>) { task.withLock { $0 = value } }
    func cancel() { task.withLock { $0 }?.cancel() }
}

/// When something last happened (a frame read); `Deadline.untilStarted(idle:)` fails once it is
/// older than `limit`.
public final class ActivityWatch: Sendable {
    /// What is watched, for the error (`nothing from <what> for <limit>`).
    public let what: String
    public let limit: Duration
    private let origin = ContinuousClock.now
    private let lastNanoseconds = Atomic<Int64>(0)

    public init(_ what: String, limit: Duration) {
        self.what = what
        self.limit = limit
    }

    private let busyDepth = Atomic<Int>(0)

    /// Runs `body` as busy time: the watch does not fire while this side is busy (e.g. waiting
    /// for room to hand a frame on), and counts from the end of it.
    public func busy<T>(_ body: () async throws -> T) async rethrows -> T {
        busyDepth.add(1, ordering: .relaxed)
        defer {
            touch()
            busyDepth.subtract(1, ordering: .relaxed)
        }
        return try await body()
    }

    var isBusy: Bool { busyDepth.load(ordering: .relaxed) > 0 }

    public func touch() {
        let elapsed = ContinuousClock.now - origin
        lastNanoseconds.store(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000, ordering: .relaxed)
    }

    public var lastTouch: ContinuousClock.Instant { origin + .nanoseconds(lastNanoseconds.load(ordering: .relaxed)) }
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
