import Contracts
import Foundation
import IntegrationSupport
import Logging
import Migrations
import PostgresNIO
import Prometheus
import Redis
import ServiceLifecycle
import ServiceSupport
import SocketSupport
import Synchronization
import Testing
@testable import OddsService

/// A throwaway database on the test PostgreSQL with the project's migrations applied.
struct ServiceTestDatabase: Sendable {
    let dsn: PostgresDSN
    let admin: PostgresDSN
    static let logger = Logger(label: "odds-service-test.pg")

    static func create() async throws -> ServiceTestDatabase {
        let admin = try PostgresDSN(try TestInfrastructure.postgresDSN())
        var dsn = admin
        dsn.database = TestInfrastructure.uniqueName("oddsvc").lowercased()
        let scratch = ServiceTestDatabase(dsn: dsn, admin: admin)
        _ = try await scratch.with(admin) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(dsn.database)\""), logger: logger)
        }
        let runner = MigrationRunner(migrations: try MigrationLoader.load(from: Self.migrationsFolder), logger: logger)
        _ = try await scratch.with(dsn) { try await runner.migrate(on: $0) }
        return scratch
    }

    static var migrationsFolder: URL {
        repositoryRoot.appendingPathComponent("migrations", isDirectory: true)
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    var dsnText: String {
        "postgres://\(dsn.username):\(dsn.password ?? "")@\(dsn.host):\(dsn.port)/\(dsn.database)"
    }

    func with<T>(_ target: PostgresDSN, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(
            configuration: try target.connectionConfiguration(), id: .random(in: 1...1_000_000), logger: Self.logger)
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    func drop() async {
        _ = try? await with(admin) { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(dsn.database)\" WITH (FORCE)"),
                                       logger: Self.logger)
        }
    }

    /// Writes updates the way odds-processor does (events, odds_current version-guarded, history).
    func seed(_ updates: [OddsUpdate]) async throws {
        try await with(dsn) { connection in
            for update in updates {
                let odds = String(decoding: try ContractCoding.encoder.encode(update.odds), as: UTF8.self)
                let ms = update.updatedAt.millisecondsSinceEpoch
                try await connection.query("""
                    INSERT INTO events (event_id, home_team, away_team, last_update_at)
                    VALUES (\(update.eventId), \(update.homeTeam), \(update.awayTeam), timestamptz 'epoch' + \(ms) * interval '1 millisecond')
                    ON CONFLICT (event_id) DO UPDATE SET last_update_at = greatest(events.last_update_at, EXCLUDED.last_update_at)
                    """, logger: Self.logger)
                try await connection.query("""
                    SELECT upsert_odds_current(\(update.eventId), \(update.market), \(update.homeTeam), \(update.awayTeam),
                        \(odds)::jsonb, \(update.status.rawValue), \(update.version),
                        timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(update.source))
                    """, logger: Self.logger)
                try await connection.query("""
                    INSERT INTO odds_history (event_id, market, version, odds, status, updated_at, source)
                    VALUES (\(update.eventId), \(update.market), \(update.version), \(odds)::jsonb, \(update.status.rawValue),
                            timestamptz 'epoch' + \(ms) * interval '1 millisecond', \(update.source))
                    ON CONFLICT DO NOTHING
                    """, logger: Self.logger)
            }
        }
    }
}

/// Writes the Redis read model and publishes, as the processor's Lua script would (HSET + ZADD +
/// PUBLISH; tests control the versions, so the guard is not needed here).
struct RedisSeeder: Sendable {
    let client: RedisClient
    let channel: String

    func write(_ update: OddsUpdate, publish: Bool = true) async throws {
        var commands: [[RedisArgument]] = [
            ["HSET", .string(RedisKeys.currentOdds(eventId: update.eventId)), .string(update.market), .bytes(Array(update.jsonData()))],
            ["ZADD", "odds:events", .integer(Int(update.updatedAt.millisecondsSinceEpoch)), .string(update.eventId)],
        ]
        if publish {
            let message = try ContractCoding.encoder.encode(BroadcastMessage(payload: update))
            commands.append(["PUBLISH", .string(channel), .bytes(Array(message))])
        }
        for result in try await client.pipeline(commands) { _ = try result.get() }
    }

    func publishOnly(_ update: OddsUpdate) async throws {
        let message = try ContractCoding.encoder.encode(BroadcastMessage(payload: update))
        try await client.publish(Array(message), to: channel)
    }
}

enum Fixtures {
    static func update(
        _ eventId: String, _ market: String = "1x2", version: Int64, home: String = "Flamengo", away: String = "Palmeiras",
        price: Double = 2.15, updatedAt: Timestamp = .now(), status: MarketStatus = .open
    ) -> OddsUpdate {
        let odds: [String: Double] = switch market {
        case "1x2": ["home": price, "draw": 3.3, "away": 3.6]
        case "ou_2_5": ["over": price, "under": 1.9]
        case "btts": ["yes": price, "no": 1.8]
        default: ["a": price, "b": 2.0]
        }
        return OddsUpdate(eventId: eventId, homeTeam: home, awayTeam: away, market: market, odds: odds,
                          status: status, updatedAt: updatedAt, source: "test", version: version)
    }

    static func eventId(_ prefix: String = "EV") -> String {
        "\(prefix)_\(UInt32.random(in: 0...UInt32.max))"
    }
}

/// One odds-service running in this process on free ports, against a private redis-server and a
/// scratch PostgreSQL database.
final class RunningService: Sendable {
    let app: OddsServiceApp
    let httpPort: Int
    let metricsPort: Int
    let task: Task<Void, any Error>
    let redisServer: RedisServerProcess
    let redis: RedisClient
    let seeder: RedisSeeder
    let database: ServiceTestDatabase
    let ownsInfrastructure: Bool

    var metrics: ServiceMetrics { app.metrics }
    var hub: FanOutHub { app.hub }
    var wsURL: String { "ws://127.0.0.1:\(httpPort)/ws/odds" }

    private init(app: OddsServiceApp, httpPort: Int, metricsPort: Int, task: Task<Void, any Error>,
                 redisServer: RedisServerProcess, redis: RedisClient, channel: String, database: ServiceTestDatabase,
                 ownsInfrastructure: Bool) {
        self.app = app
        self.httpPort = httpPort
        self.metricsPort = metricsPort
        self.task = task
        self.redisServer = redisServer
        self.redis = redis
        seeder = RedisSeeder(client: redis, channel: channel)
        self.database = database
        self.ownsInfrastructure = ownsInfrastructure
    }

    /// Starts a service. Pass `sharing` to start a second instance on the same Redis and database.
    static func start(
        sharing other: RunningService? = nil,
        environment: [String: String] = [:]
    ) async throws -> RunningService {
        let redisServer: RedisServerProcess
        let database: ServiceTestDatabase
        if let other {
            redisServer = other.redisServer
            database = other.database
        } else {
            redisServer = try RedisServerProcess()
            try await redisServer.start()
            database = try await ServiceTestDatabase.create()
        }
        let channel = other?.seeder.channel ?? "odds_updates_broadcast_\(UInt32.random(in: 0...UInt32.max))"
        var values: [String: String] = [
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "METRICS_PORT": "0",
            "REDIS_ADDR": redisServer.address, "REDIS_PUBSUB_CHANNEL": channel,
            "POSTGRES_DSN": database.dsnText,
            "OPENAPI_PATH": ServiceTestDatabase.repositoryRoot.appendingPathComponent("contracts/openapi.yaml").path,
            "WS_HEARTBEAT_MS": "60000", "WS_PING_MS": "60000",
        ]
        values.merge(environment) { $1 }
        let configuration = try ServiceConfiguration(reader: ConfigurationReader(environment: values))
        let registry = MetricsSetup.bootstrap()
        var logger = Logger(label: "odds-service-test")
        logger.logLevel = .warning
        let ports = Mutex<(http: Int?, metrics: Int?)>((nil, nil))
        let app = try buildApplication(
            configuration: configuration, registry: registry, logger: logger,
            onHTTPRunning: { port in ports.withLock { $0.http = port } },
            onMetricsRunning: { port in ports.withLock { $0.metrics = port } })
        let group = app.serviceGroup(signals: [])
        let task = Task { try await group.run() }
        let started = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) {
            ports.withLock { $0.http != nil && $0.metrics != nil } && app.pump.subscribed.load(ordering: .relaxed)
        }
        let bound = ports.withLock { $0 }
        guard started, let http = bound.http, let metricsPort = bound.metrics else {
            task.cancel()
            throw TestFailure("odds-service did not start")
        }
        let redis = try RedisClient(address: redisServer.address)
        return RunningService(app: app, httpPort: http, metricsPort: metricsPort, task: task, redisServer: redisServer,
                              redis: redis, channel: channel, database: database, ownsInfrastructure: other == nil)
    }

    /// Stops the service (graceful shutdown) and, if it owns them, Redis and the database.
    func stop() async {
        task.cancel()
        _ = try? await task.value
        await redis.shutdown()
        if ownsInfrastructure {
            await stopRedis()
            await database.drop()
        }
    }

    /// Stops the private redis-server off the cooperative pool (ManagedProcess.stop blocks).
    func stopRedis() async {
        let server = redisServer
        _ = try? await onThread { server.stop() }
    }

    func get(_ path: String, port: Int? = nil) async throws -> HTTPAnswer {
        try await RawHTTP.get(host: "127.0.0.1", port: port ?? httpPort, path: path)
    }
}

struct HTTPAnswer: Sendable {
    let status: Int
    let contentType: String?
    let body: Data

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(type, from: body) }
    var errorCode: String? { (try? decode(APIErrorResponse.self))?.error.code }
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// GET over a fresh connection (the shared test client, IntegrationSupport's `HTTP`).
enum RawHTTP {
    static func get(host: String, port: Int, path: String) async throws -> HTTPAnswer {
        let answer = try await HTTP.exchange(host: host, port: port,
                                             "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n")
        return HTTPAnswer(status: answer.status, contentType: answer.header("content-type"), body: Data(answer.body))
    }
}

/// Runs blocking work (sockets, waiting for a child process) on its own thread: the service under
/// test runs in this process and needs the few cooperative-pool threads of a 2-core machine.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}
