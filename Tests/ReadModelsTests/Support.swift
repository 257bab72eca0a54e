import Contracts
import Foundation
import IntegrationSupport
import Logging
import Migrations
import PostgresNIO
import ReadModels
import Redis
import Synchronization
import Testing

enum ReadModelTest {
    static let logger: Logger = {
        var logger = Logger(label: "read-models-tests")
        logger.logLevel = .critical
        return logger
    }()

    /// An update of `market` whose prices are derived from `price`. Unless given, `updatedAt`
    /// follows the version (one second per version), as a supplier's would.
    /// The `source` (feed) of every test update.
    static let source = "read-models-test"

    static func update(
        _ eventId: String, _ market: String = "1x2", version: Int64, price: Double = 2.5,
        updatedAtMs: Int64? = nil, status: MarketStatus = .open, home: String = "Santos", away: String = "Gremio"
    ) -> OddsUpdate {
        OddsUpdate(
            eventId: eventId, homeTeam: home, awayTeam: away, market: market,
            odds: ["first": price, "second": 3.25, "third": 4.75], status: status,
            updatedAt: Timestamp(millisecondsSinceEpoch: updatedAtMs ?? 1_790_000_000_000 + version * 1000),
            source: source, version: version)
    }
}

/// Runs `body`, then `cleanup` whether `body` threw or not.
func ensuring<T>(finally cleanup: () async -> Void, _ body: () async throws -> T) async throws -> T {
    let outcome: Result<T, any Error>
    do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
    await cleanup()
    return try outcome.get()
}

/// A migrated scratch database on the test PostgreSQL with a running `PostgresClient`; the
/// database is dropped when the body ends, whatever the outcome.
struct PostgresReadModels: Sendable {
    let database: ScratchDatabase
    let client: PostgresClient

    var writer: PostgresOddsWriter { PostgresOddsWriter(client: client, logger: ReadModelTest.logger) }
    var reader: PostgresOddsReadRepository { PostgresOddsReadRepository(client: client, logger: ReadModelTest.logger) }

    static func with<T>(_ body: (PostgresReadModels) async throws -> T) async throws -> T {
        let database = try await ScratchDatabase.create()
        return try await ensuring(finally: { await database.drop() }) {
            try await database.migrate()
            var configuration = try database.dsn.clientConfiguration()
            configuration.options.connectTimeout = .seconds(10)
            let client = PostgresClient(configuration: configuration, backgroundLogger: ReadModelTest.logger)
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                return try await body(PostgresReadModels(database: database, client: client))
            }
        }
    }

    /// `event/market/version` of every history row of `eventIds` (duplicates kept), sorted
    /// here rather than by the server's collation, so callers compare with `.sorted()`.
    func historyRows(_ eventIds: [String]) async throws -> [String] {
        let list = eventIds.map { "'\($0)'" }.joined(separator: ",")
        return try await database.strings("""
            SELECT event_id || '/' || market || '/' || version FROM odds_history WHERE event_id IN (\(list))
            """).sorted()
    }
}

/// A client of a real Redis (the shared test Redis unless an address is given), a broadcast
/// channel of its own, and cleanup of every event id handed out by `event(_:)`.
final class RedisReadModels: Sendable {
    let client: RedisClient
    let address: String
    let channel: String
    private let prefix = TestInfrastructure.uniqueName("RM")
    private let handedOut = Mutex<Set<String>>([])
    private let recorders = Mutex<[BroadcastRecorder]>([])

    let writer: RedisOddsWriter
    /// One reader for the whole test, so its memo of decoded values is exercised.
    let reader: RedisOddsReader

    private init(address: String, client: RedisClient) {
        self.address = address
        self.client = client
        let channel = TestInfrastructure.uniqueName("odds_updates_broadcast")
        self.channel = channel
        writer = RedisOddsWriter(client: client, channel: channel)
        reader = RedisOddsReader(client: client, logger: ReadModelTest.logger)
    }

    static func with<T>(address: String? = nil, _ body: (RedisReadModels) async throws -> T) async throws -> T {
        let address = try address ?? TestInfrastructure.redisAddress()
        var configuration = try RedisConfiguration(address: address)
        configuration.commandTimeout = .seconds(5)
        configuration.connectTimeout = .seconds(5)
        let models = RedisReadModels(address: address, client: RedisClient(configuration: configuration, logger: ReadModelTest.logger))
        return try await ensuring(finally: { await models.cleanUp() }) { try await body(models) }
    }

    /// A unique event id for this test (removed from Redis at the end).
    func event(_ index: Int) -> String {
        let eventId = "\(prefix)_\(index)"
        handedOut.withLock { _ = $0.insert(eventId) }
        return eventId
    }

    /// Starts recording this test's broadcast channel (stopped at the end of the test).
    func recordBroadcasts() async throws -> BroadcastRecorder {
        let recorder = try await BroadcastRecorder.start(address: address, channel: channel)
        recorders.withLock { $0.append(recorder) }
        return recorder
    }

    private func cleanUp() async {
        for recorder in recorders.withLock({ $0 }) { await recorder.stop() }
        let events = handedOut.withLock { Array($0) }
        if !events.isEmpty {
            _ = try? await client.del(events.map { RedisKeys.currentOdds(eventId: $0) })
            _ = try? await client.send(command: ["ZREM", .string(OddsRedisKeys.events)] + events.map { .string($0) })
        }
        await client.shutdown()
    }
}

/// Records every message published on one channel, through the project's `RedisSubscriber`.
final class BroadcastRecorder: Sendable {
    let channel: String
    private let subscriber: RedisSubscriber
    private let state = Mutex<(subscribed: Bool, payloads: [[UInt8]])>((false, []))
    private let consumer = Mutex<Task<Void, Never>?>(nil)

    /// Subscribes and returns once Redis confirmed the subscription.
    static func start(address: String, channel: String) async throws -> BroadcastRecorder {
        let configuration = try RedisConfiguration(address: address)
        let recorder = BroadcastRecorder(
            channel: channel,
            subscriber: RedisSubscriber(configuration: configuration, channels: [channel], logger: ReadModelTest.logger))
        recorder.consume()
        let subscribed = try await TestInfrastructure.waitUntil { recorder.state.withLock { $0.subscribed } }
        guard subscribed else {
            await recorder.stop()
            throw TestFailure("SUBSCRIBE to \(channel) was not confirmed in time")
        }
        return recorder
    }

    private init(channel: String, subscriber: RedisSubscriber) {
        self.channel = channel
        self.subscriber = subscriber
    }

    private func consume() {
        subscriber.start()
        // Ends when `stop()` shuts the subscriber down (the sequence then finishes).
        let task = Task {
            for await event in subscriber {
                switch event {
                case .subscribed:
                    self.state.withLock { $0.subscribed = true }
                case .message(let name, let payload) where name == self.channel:
                    self.state.withLock { $0.payloads.append(payload) }
                default:
                    break
                }
            }
        }
        consumer.withLock { $0 = task }
    }

    var payloads: [[UInt8]] { state.withLock { $0.payloads } }

    /// The messages received so far once there are at least `count` (or the timeout passed).
    func waitForMessages(_ count: Int, timeout: Duration = .seconds(10)) async throws -> [[UInt8]] {
        _ = try await TestInfrastructure.waitUntil(timeout: timeout) { self.payloads.count >= count }
        return payloads
    }

    func stop() async {
        await subscriber.shutdown()
        await consumer.withLock { $0 }?.value
    }
}

/// A private redis-server started for one test (for exact global state, or to stop it).
func withPrivateRedis<T>(_ body: (RedisServerProcess) async throws -> T) async throws -> T {
    let server = try RedisServerProcess()
    try await server.start()
    defer { server.stop(signal: SIGKILL) }
    return try await body(server)
}
