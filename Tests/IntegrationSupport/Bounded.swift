import ServiceSupport

extension TestInfrastructure {
    /// Runs `body` for at most `timeout`; then throws a failure naming `what` without waiting
    /// for `body` (see `Deadline`): even an await that ignores cancellation cannot hold a test
    /// past its bound.
    public static func bounded<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await Deadline.run(what, timeout: timeout, body)
    }

    /// Awaits `task` for at most `timeout` (then cancels it and throws a failure naming `what`).
    public static func value<T: Sendable>(of task: Task<T, any Error>, _ what: String, timeout: Duration) async throws -> T {
        try await Deadline.run(what, timeout: timeout) {
            try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
        }
    }

    /// Awaits a task that cannot fail, for at most `timeout`.
    public static func value<T: Sendable>(of task: Task<T, Never>, _ what: String, timeout: Duration) async throws -> T {
        try await Deadline.run(what, timeout: timeout) {
            await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
        }
    }
}
