import Foundation
import SocketSupport

/// Where the real servers for integration tests are. `make test` (scripts/test.sh) starts them on
/// free ports and exports these variables; a missing variable is a test failure, never a skip.
public enum TestInfrastructure {
    public struct Missing: Error, CustomStringConvertible {
        public let variable: String
        public var description: String {
            "integration test needs \(variable); run the suite with `make test`, which starts Redis, PostgreSQL and the Kafka dev broker"
        }
    }

    public static func require(_ variable: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty else {
            throw Missing(variable: variable)
        }
        return value
    }

    /// `host:port` of the shared Redis started by `make test`.
    public static func redisAddress() throws -> String { try require("ODDS_TEST_REDIS_ADDR") }
    /// `postgres://user:password@host:port/database` of the shared PostgreSQL started by `make test`.
    public static func postgresDSN() throws -> String { try require("ODDS_TEST_POSTGRES_DSN") }
    /// Bootstrap address of the shared kafka-dev-broker started by `make test`.
    public static func kafkaBrokers() throws -> String { try require("ODDS_TEST_KAFKA_BROKERS") }
    /// Folder holding the built executables (`kafka-dev-broker`, `migrate`, ...).
    public static func binDirectory() throws -> URL {
        URL(fileURLWithPath: try require("ODDS_TEST_BIN_DIR"), isDirectory: true)
    }

    /// A name no other test run uses, for topics, groups, keys and databases.
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(UInt32.random(in: 0...UInt32.max))_\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    public static func freePort() throws -> Int {
        guard let port = BlockingSocket.freeLoopbackPort() else { throw POSIXError(.EADDRINUSE) }
        return port
    }

    /// Polls `condition` until it is true or `timeout` passes.
    public static func waitUntil(
        timeout: Duration = .seconds(10),
        interval: Duration = .milliseconds(50),
        _ condition: () async throws -> Bool
    ) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: interval)
        }
        return try await condition()
    }
}

/// A private redis-server on a free port, for tests that stop and restart Redis.
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    public private(set) var server: ManagedProcess?
    public var address: String { "127.0.0.1:\(port)" }

    public init(port: Int? = nil) throws {
        self.port = try port ?? TestInfrastructure.freePort()
    }

    public func start() async throws {
        let process = try ManagedProcess(
            executable: try ManagedProcess.which("redis-server"),
            arguments: ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        )
        server = process
        let ready = try await TestInfrastructure.waitUntil { Self.canConnect(port: self.port) }
        if !ready { throw TestInfrastructure.Missing(variable: "redis-server on port \(port): \(process.output)") }
    }

    public func stop(signal: Int32 = SIGTERM) {
        server?.stop(signal: signal)
        server = nil
    }

    static func canConnect(port: Int) -> Bool {
        BlockingSocket.canConnect(port: port)
    }

    deinit { server?.stop(signal: SIGKILL) }
}

/// A private kafka-dev-broker process (built by `swift build`), for tests that need their own
/// cluster or restart it.
public final class KafkaDevBrokerProcess: @unchecked Sendable {
    public let process: ManagedProcess
    public let bootstrap: String

    public init(brokers: Int = 1, topics: [String] = ["odds_updates:12", "odds_updates_dlq:1", "odds_feed_status:1"]) async throws {
        let addressFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("kafka-dev-broker-\(UUID().uuidString).addr")
        var arguments = ["--brokers", "\(brokers)", "--address-file", addressFile.path]
        for topic in topics { arguments += ["--topic", topic] }
        process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent("kafka-dev-broker"),
            arguments: arguments
        )
        var address: String?
        let started = try await TestInfrastructure.waitUntil {
            address = try? String(contentsOf: addressFile, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return !(address ?? "").isEmpty
        }
        try? FileManager.default.removeItem(at: addressFile)
        guard started, let address else {
            throw TestInfrastructure.Missing(variable: "kafka-dev-broker start: \(process.output)")
        }
        bootstrap = address
    }

    public func stop(signal: Int32 = SIGTERM) { process.stop(signal: signal) }
}
