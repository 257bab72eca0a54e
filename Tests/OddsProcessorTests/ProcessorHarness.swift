import Contracts
import Foundation
import IntegrationSupport
import Kafka
import Logging
import PostgresNIO
import Redis
import Testing

/// Real servers and real odds-processor processes for one test: a private dev broker, a scratch
/// database on the test PostgreSQL (or a private cluster), and Redis.
final class ProcessorHarness: @unchecked Sendable {
    let broker: KafkaDevBrokerProcess
    let database: ScratchDatabase
    let redisAddress: String
    let redis: RedisClient
    let channel = TestInfrastructure.uniqueName("odds_updates_broadcast")
    let eventPrefix = TestInfrastructure.uniqueName("EV").replacingOccurrences(of: "_", with: "")
    private(set) var processors: [ManagedProcess] = []
    private(set) var metricsPorts: [Int] = []
    let logger = Logger(label: "processor-test")

    init(database: ScratchDatabase? = nil, redisAddress: String? = nil) async throws {
        broker = try await KafkaDevBrokerProcess(topics: ["odds_updates:6", "odds_updates_dlq:1", "odds_feed_status:1"])
        if let database {
            self.database = database
        } else {
            self.database = try await ScratchDatabase.create()
        }
        self.redisAddress = try redisAddress ?? TestInfrastructure.redisAddress()
        redis = try RedisClient(address: self.redisAddress, logger: logger)
    }

    /// Starts one odds-processor; returns its index.
    @discardableResult
    func startProcessor(batchSize: Int = 500) throws -> Int {
        let port = try TestInfrastructure.freePort()
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent("odds-processor"),
            arguments: [],
            environment: [
                "KAFKA_BROKERS": broker.bootstrap, "REDIS_ADDR": redisAddress, "REDIS_PUBSUB_CHANNEL": channel,
                "POSTGRES_DSN": database.dsnText, "METRICS_PORT": "\(port)", "PROCESSOR_BATCH_SIZE": "\(batchSize)",
                "MIGRATIONS_DIR": ScratchDatabase.migrationsFolder.path, "LOG_FORMAT": "text", "LOG_LEVEL": "info",
                "KAFKA_SESSION_TIMEOUT_MS": "6000",
            ])
        processors.append(process)
        metricsPorts.append(port)
        return processors.count - 1
    }

    func processor(_ index: Int) -> ManagedProcess { processors[index] }

    func eventId(_ index: Int) -> String { "\(eventPrefix)_\(index)" }

    /// Updates for `events` × {1x2, btts, ou_2_5} with versions 1...versionsPerMarket.
    func makeUpdates(events: Int, versionsPerMarket: Int) -> [OddsUpdate] {
        var updates: [OddsUpdate] = []
        for version in 1...versionsPerMarket {
            for event in 0..<events {
                for market in KnownMarket.allCases {
                    let odds = Dictionary(uniqueKeysWithValues: market.selections.enumerated().map { index, name in
                        // An exact two-decimal price (150...449 hundredths), valid under the 3-decimal rule.
                        (name, Double(150 + (version * 7 + index * 13 + event) % 300) / 100)
                    })
                    updates.append(OddsUpdate(
                        eventId: eventId(event), homeTeam: "Home \(event)", awayTeam: "Away \(event)", market: market.rawValue,
                        odds: odds, status: version % 17 == 0 ? .suspended : .open,
                        updatedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000 + Int64(version) * 1000),
                        source: "test", version: Int64(version)))
                }
            }
        }
        return updates
    }

    /// Produces values keyed by event id and waits for every delivery.
    func produce(_ values: [(key: String, value: [UInt8])]) async throws {
        var configuration = KafkaProducerConfiguration(bootstrapServers: broker.bootstrap)
        configuration.clientID = "processor-test-producer"
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        // Reading the delivery reports frees the producer's in-flight permits.
        let expected = values.count
        let reports = Task {
            var delivered = 0
            var failed = 0
            for await report in producer.deliveryReports {
                if report.isDelivered { delivered += 1 } else { failed += 1 }
                if delivered + failed == expected { break }
            }
            return (delivered, failed)
        }
        for (key, value) in values {
            _ = try await producer.enqueue(KafkaProducerMessage(topic: Topics.oddsUpdates, key: Array(key.utf8), value: value))
        }
        try await producer.flush(timeout: .seconds(60))
        let (delivered, failed) = await reports.value
        await producer.shutdown()
        #expect(delivered == expected && failed == 0, "test producer: \(delivered) delivered, \(failed) failed of \(expected)")
    }

    func produce(_ updates: [OddsUpdate]) async throws {
        try await produce(updates.map { (key: $0.eventId, value: Array($0.jsonData())) })
    }

    /// Newest version per market in `updates`.
    static func expectedFinal(_ updates: [OddsUpdate]) -> [MarketKey: OddsUpdate] {
        var final: [MarketKey: OddsUpdate] = [:]
        for update in updates where (final[update.marketKey]?.version ?? 0) < update.version {
            final[update.marketKey] = update
        }
        return final
    }

    /// Current versions in PostgreSQL for this test's events.
    func postgresVersions() async throws -> [MarketKey: Int64] {
        try await database.withConnection { connection in
            var versions: [MarketKey: Int64] = [:]
            let rows = try await connection.query(
                "SELECT event_id, market, version FROM odds_current WHERE event_id LIKE \(eventPrefix + "%")", logger: logger)
            for try await (event, market, version) in rows.decode((String, String, Int64).self) {
                versions[MarketKey(eventId: event, market: market)] = version
            }
            return versions
        }
    }

    /// Waits until PostgreSQL holds exactly the expected newest versions.
    func waitForPostgres(_ expected: [MarketKey: OddsUpdate], timeout: Duration = .seconds(90)) async throws -> Bool {
        let target = expected.mapValues(\.version)
        return try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(250)) {
            try await self.postgresVersions() == target
        }
    }

    /// Checks the final state: PostgreSQL and Redis hold exactly the newest version (and content)
    /// of every market, and history holds each applied version once, the newest among them.
    func verifyFinalState(_ expected: [MarketKey: OddsUpdate]) async throws {
        #expect(try await postgresVersions() == expected.mapValues(\.version))
        var redisMismatches: [String] = []
        for event in Set(expected.keys.map(\.eventId)) {
            let hash = try await redis.hgetall(RedisKeys.currentOdds(eventId: event))
            for (market, json) in hash {
                let key = MarketKey(eventId: event, market: market)
                guard let want = expected[key] else { redisMismatches.append("unexpected \(key)"); continue }
                let stored = try? OddsUpdateValidator.validate(json).get()
                if stored != want { redisMismatches.append("\(key): \(String(decoding: json, as: UTF8.self))") }
            }
            let markets = Set(hash.keys)
            let wanted = Set(expected.keys.filter { $0.eventId == event }.map(\.market))
            if markets != wanted { redisMismatches.append("\(event): markets \(markets.sorted()) != \(wanted.sorted())") }
        }
        #expect(redisMismatches.isEmpty, "\(redisMismatches.prefix(5))")

        let history = try await database.withConnection { connection in
            var rows: [(String, String, Int64, Int)] = []
            let result = try await connection.query("""
                SELECT event_id, market, max(version), count(*)::int - count(DISTINCT version)::int
                FROM odds_history WHERE event_id LIKE \(eventPrefix + "%") GROUP BY event_id, market
                """, logger: logger)
            for try await row in result.decode((String, String, Int64, Int).self) { rows.append(row) }
            return rows
        }
        #expect(history.count == expected.count)
        for (event, market, newest, duplicates) in history {
            #expect(duplicates == 0)
            #expect(newest == expected[MarketKey(eventId: event, market: market)]?.version)
        }
    }

    /// `/readyz` of processor `index`: true (200), false (503) or nil (not answering).
    func isReady(_ index: Int) async -> Bool? {
        await TestInfrastructure.httpGet("http://127.0.0.1:\(metricsPorts[index])/readyz").map { $0.status == 200 }
    }

    func shutdown() async {
        for process in processors { process.stop(signal: SIGKILL) }
        broker.stop()
        await redis.shutdown()
        await database.drop()
    }
}
