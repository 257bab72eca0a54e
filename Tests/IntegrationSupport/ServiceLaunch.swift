import Foundation

/// A test expectation that failed outside a test body (a helper that could not do its job).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension ManagedProcess {
    /// Starts one of the project's executables (from `ODDS_TEST_BIN_DIR`) and waits until
    /// `GET http://127.0.0.1:<metricsPort><path>` answers 200 (`/healthz`: alive, `/readyz`: its
    /// dependencies answer). Throws with the process output when it does not within `timeout`.
    public static func launch(
        _ executable: String,
        environment: [String: String],
        metricsPort: Int,
        waitFor path: String = "/healthz",
        timeout: Duration = .seconds(15)
    ) async throws -> ManagedProcess {
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent(executable),
            arguments: [], environment: environment)
        let up = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(100)) {
            await TestInfrastructure.httpGet("http://127.0.0.1:\(metricsPort)\(path)", timeout: 2)?.status == 200
        }
        guard up else {
            await process.stopAsync(signal: SIGKILL)
            throw TestFailure("\(executable) did not answer 200 on \(path) within \(timeout): \(process.output.suffix(4000))")
        }
        return process
    }

    /// `stop` without holding a thread of the cooperative pool while the process exits (tests run
    /// clients in this process that need those few threads on a 2-core machine).
    @discardableResult
    public func stopAsync(signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            guard (try? await Task.sleep(for: .milliseconds(10))) != nil else { break }
        }
        return stop(signal: SIGKILL)
    }
}
