import Foundation

/// A test expectation that failed outside a test body (a helper that could not do its job).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension ManagedProcess {
    /// Starts one of the project's executables (from `ODDS_TEST_BIN_DIR`) and waits until
    /// `GET http://127.0.0.1:<metricsPort><path>` answers 200 (`/healthz`: alive, `/readyz`: its
    /// dependencies answer). Throws with the process output when it does not within `timeout`
    /// or exits first.
    public static func launch(
        _ executable: String,
        environment: [String: String],
        metricsPort: Int,
        waitFor path: String = "/healthz",
        timeout: Duration = .seconds(30)
    ) async throws -> ManagedProcess {
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent(executable),
            arguments: [], environment: environment)
        let up = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(100)) {
            guard process.isRunning else { return true }
            return await HTTP.probe("http://127.0.0.1:\(metricsPort)\(path)", timeout: .seconds(2))?.status == 200
        }
        guard up, process.isRunning else {
            await process.stopAsync(signal: SIGKILL)
            throw TestFailure("\(executable) did not answer 200 on \(path) within \(timeout) (status \(process.terminationStatus.map { "\($0)" } ?? "running")): \(process.output.suffix(4000))")
        }
        return process
    }
}
