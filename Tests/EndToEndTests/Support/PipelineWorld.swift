import Foundation
import IntegrationSupport
import Synchronization
@testable import SupplierSimulator

/// One test's whole pipeline: a private redis-server and kafka-dev-broker (so the test can kill
/// things without disturbing others), a scratch database on the shared test PostgreSQL, and the
/// four real executables on free ports. Each executable can be killed and started again with the
/// same settings and ports.
final class PipelineWorld: Sendable {
    enum Component: String, CaseIterable, Sendable, CustomStringConvertible {
        case supplier, ingest, processor, service

        var executable: String {
            switch self {
            case .supplier: "supplier-simulator"
            case .ingest: "odds-ingest"
            case .processor: "odds-processor"
            case .service: "odds-service"
            }
        }

        /// What "started" means: the supplier and odds-service answer /readyz once they can do
        /// their job; ingest is alive before the supplier lets it in; the processor is ready
        /// once its schema is checked.
        var startedPath: String { self == .ingest ? "/healthz" : "/readyz" }
        var description: String { executable }
    }

    /// The supplier's feed: rate, catalogue, seed and fault injection (SUPPLIER_* variables).
    struct Feed: Sendable {
        var rate = 400
        /// SUPPLIER_EVENTS: generated events on top of MATCH_001–004.
        var generatedEvents = 16
        var seed: UInt64 = 1
        var malformed = 0.0
        var invalid = 0.0
        var duplicate = 0.0
        var outOfOrder = 0.0
        /// SUPPLIER_DISCONNECT_EVERY in seconds; 0 = never.
        var disconnectEvery = 0.0
        /// SUPPLIER_MAX_FRAMES: the stream ends (quiet, connections open) after this many
        /// frames; 0 = never.
        var maxFrames = 0
    }

    let redis: RedisServerProcess
    let broker: KafkaDevBrokerProcess
    let database: ScratchDatabase
    let journalPath: String
    /// Every event the supplier quotes (MATCH_001–004, GEN_0001...).
    let eventIds: [String]
    let serviceHTTPPort: Int
    let metricsPorts: [Component: Int]
    private let environments: [Component: [String: String]]
    private let running = Mutex<[Component: ManagedProcess]>([:])
    /// The last lines each stopped process wrote, for failure reports.
    private let finishedOutput = Mutex<[String]>([])

    var serviceWebSocketURL: String { "ws://127.0.0.1:\(serviceHTTPPort)/ws/odds" }
    func metricsURL(_ component: Component, _ path: String = "/metrics") -> String {
        "http://127.0.0.1:\(metricsPorts[component]!)\(path)"
    }

    private init(redis: RedisServerProcess, broker: KafkaDevBrokerProcess, database: ScratchDatabase, feed: Feed) throws {
        self.redis = redis
        self.broker = broker
        self.database = database
        journalPath = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-journal-\(UUID().uuidString).jsonl").path
        eventIds = Catalogue.events(generatedCount: feed.generatedEvents).map(\.eventId)
        let supplierHTTPPort = try TestInfrastructure.freePort()
        serviceHTTPPort = try TestInfrastructure.freePort()
        var ports: [Component: Int] = [:]
        for component in Component.allCases { ports[component] = try TestInfrastructure.freePort() }
        metricsPorts = ports

        let common = ["HTTP_HOST": "127.0.0.1", "LOG_FORMAT": "text", "LOG_LEVEL": "info"]
        let repository = ScratchDatabase.migrationsFolder.deletingLastPathComponent()
        var environments: [Component: [String: String]] = [:]
        environments[.supplier] = [
            "HTTP_PORT": "\(supplierHTTPPort)", "SUPPLIER_RATE": "\(feed.rate)",
            "SUPPLIER_EVENTS": "\(feed.generatedEvents)", "SUPPLIER_SEED": "\(feed.seed)", "SUPPLIER_JOURNAL": journalPath,
            "SUPPLIER_FAULT_MALFORMED": "\(feed.malformed)", "SUPPLIER_FAULT_INVALID": "\(feed.invalid)",
            "SUPPLIER_FAULT_DUPLICATE": "\(feed.duplicate)", "SUPPLIER_FAULT_OUT_OF_ORDER": "\(feed.outOfOrder)",
            "SUPPLIER_DISCONNECT_EVERY": "\(feed.disconnectEvery)", "SUPPLIER_MAX_FRAMES": "\(feed.maxFrames)",
        ]
        environments[.ingest] = [
            "SUPPLIER_WS_URL": "ws://127.0.0.1:\(supplierHTTPPort)/ws", "KAFKA_BROKERS": broker.bootstrap,
            "INGEST_RECONNECT_MIN_MS": "50", "INGEST_RECONNECT_MAX_MS": "500",
        ]
        environments[.processor] = [
            "KAFKA_BROKERS": broker.bootstrap, "REDIS_ADDR": redis.address, "POSTGRES_DSN": database.dsnText,
            "MIGRATIONS_DIR": ScratchDatabase.migrationsFolder.path, "KAFKA_SESSION_TIMEOUT_MS": "6000",
        ]
        environments[.service] = [
            "HTTP_PORT": "\(serviceHTTPPort)", "REDIS_ADDR": redis.address, "POSTGRES_DSN": database.dsnText,
            "OPENAPI_PATH": repository.appendingPathComponent("contracts/openapi.yaml").path,
            // A reconnecting client resumes with one subscribe frame per event (`versions` is per
            // market and applies to every event of a frame): allow a burst of them.
            "WS_MAX_MESSAGES_PER_SECOND": "500",
            // The test's subscriber reads as fast as it can, but a loaded 2-core CI machine can
            // stall it for a moment; a deep queue keeps such a stall from turning into
            // conflation, so that "nothing lost" can be asserted exactly (see the suite).
            "WS_QUEUE_LIMIT": "20000",
        ]
        for component in Component.allCases {
            environments[component]!["METRICS_PORT"] = "\(ports[component]!)"
            environments[component]!.merge(common) { own, _ in own }
        }
        self.environments = environments
    }

    /// Starts the infrastructure (none of the executables yet) and runs `body`; everything
    /// started is stopped afterwards, also when `body` or a start throws.
    static func with(_ feed: Feed, _ body: (PipelineWorld) async throws -> Void) async throws {
        var cleanup: [@Sendable () async -> Void] = []
        func unwind() async {
            for step in cleanup.reversed() { await step() }
        }
        do {
            let redis = try RedisServerProcess()
            cleanup.append { await redis.server?.stopAsync(signal: SIGKILL) }
            try await redis.start()
            let broker = try await KafkaDevBrokerProcess()
            cleanup.append { await broker.process.stopAsync(signal: SIGKILL) }
            let database = try await ScratchDatabase.create()
            cleanup.append { await database.drop() }
            try await database.migrate()
            let world = try PipelineWorld(redis: redis, broker: broker, database: database, feed: feed)
            cleanup.append { await world.stopExecutables() }
            try await body(world)
        } catch {
            await unwind()
            throw error
        }
        await unwind()
    }

    /// Starts `component` and waits until it answers (see `Component.startedPath`).
    func start(_ component: Component) async throws {
        let process = try await ManagedProcess.launch(
            component.executable, environment: environments[component]!, metricsPort: metricsPorts[component]!,
            waitFor: component.startedPath, timeout: .seconds(30))
        let previous = running.withLock { $0.updateValue(process, forKey: component) }
        if let previous { await retire(component, previous, signal: SIGKILL) }
    }

    /// kill -9: no shutdown path runs.
    func kill(_ component: Component) async {
        guard let process = running.withLock({ $0.removeValue(forKey: component) }) else { return }
        await retire(component, process, signal: SIGKILL)
    }

    /// SIGTERM and wait for the graceful exit (the supplier drains its clients and flushes the
    /// journal). Returns the exit status.
    @discardableResult
    func stop(_ component: Component) async -> Int32? {
        guard let process = running.withLock({ $0.removeValue(forKey: component) }) else { return nil }
        return await retire(component, process, signal: SIGTERM)
    }

    func isRunning(_ component: Component) -> Bool {
        running.withLock { $0[component]?.isRunning ?? false }
    }

    @discardableResult
    private func retire(_ component: Component, _ process: ManagedProcess, signal: Int32) async -> Int32 {
        let status = await process.stopAsync(signal: signal, timeout: .seconds(20))
        let tail = process.output.split(separator: "\n", omittingEmptySubsequences: false).suffix(25).joined(separator: "\n")
        finishedOutput.withLock { $0.append("--- \(component) (pid \(process.pid), signal \(signal), status \(status)):\n\(tail)") }
        return status
    }

    /// The Prometheus text of a running component ("" when it does not answer).
    func metrics(_ component: Component) async -> String {
        await TestInfrastructure.httpGet(metricsURL(component), timeout: 5)?.body ?? ""
    }

    /// One sample of a running component's metrics (`name` as in `MetricsText.value`, or a
    /// prefix ending in `{` for the sum over every label value); nil when it does not answer.
    func metric(_ component: Component, _ name: String) async -> Double? {
        guard let text = await TestInfrastructure.httpGet(metricsURL(component), timeout: 5)?.body, !text.isEmpty else { return nil }
        return name.hasSuffix("{") ? MetricsText.sum(prefix: name, in: text) : MetricsText.value(name, in: text)
    }

    /// Waits (polling, at most `timeout`) until `condition` holds for `component`'s metrics;
    /// throws a failure naming `what`, with every process's last output, when it does not.
    func waitForMetrics(_ component: Component, _ what: String, timeout: Duration = .seconds(30),
                        interval: Duration = .milliseconds(20), _ condition: @escaping (String) -> Bool) async throws {
        let met = try await TestInfrastructure.waitUntil(timeout: timeout, interval: interval) {
            guard let text = await TestInfrastructure.httpGet(self.metricsURL(component), timeout: 2)?.body else { return false }
            return condition(text)
        }
        if !met { throw TestFailure("waited \(timeout) for \(what), in vain\n\(diagnostics())") }
    }

    /// The running process of `component` (to signal it), if any.
    func process(_ component: Component) -> ManagedProcess? {
        running.withLock { $0[component] }
    }

    /// The last lines of every process's output, for failure messages.
    func diagnostics() -> String {
        let live = running.withLock { $0 }.sorted { $0.key.rawValue < $1.key.rawValue }.map { component, process in
            "--- \(component) (running, pid \(process.pid)):\n"
                + process.output.split(separator: "\n", omittingEmptySubsequences: false).suffix(25).joined(separator: "\n")
        }
        return (finishedOutput.withLock { $0 } + live).joined(separator: "\n")
    }

    private func stopExecutables() async {
        for component in Component.allCases { await kill(component) }
        try? FileManager.default.removeItem(atPath: journalPath)
    }
}
