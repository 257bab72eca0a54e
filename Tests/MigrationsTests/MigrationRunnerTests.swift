import Foundation
import IntegrationSupport
import Logging
import PostgresNIO
import Testing
@testable import Migrations

@Suite("migration runner against PostgreSQL", .serialized, .timeLimit(.minutes(2)))
struct MigrationRunnerTests {
    let logger = Logger(label: "migrations-test")

    func projectRunner() throws -> MigrationRunner {
        MigrationRunner(migrations: try MigrationLoader.load(from: MigrationsFolder.url), logger: logger)
    }

    @Test func appliesInOrderAndIsSafeToRunTwice() async throws {
        let database = try await ScratchDatabase.create()
        defer { Task { await database.drop() } }
        let runner = try projectRunner()

        let before = try await database.withConnection { try await runner.status(on: $0) }
        #expect(before.applied.isEmpty)
        #expect(before.pending.map(\.version) == [1, 2, 3])

        #expect(try await database.withConnection { try await runner.migrate(on: $0) } == [1, 2, 3])
        #expect(try await database.withConnection { try await runner.migrate(on: $0) } == [])
        #expect(try await database.withConnection { try await runner.status(on: $0) }.isCurrent)

        let tables = try await database.strings(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
        #expect(tables == ["events", "feed_status", "odds_current", "odds_history", "schema_migrations"])
        #expect(try await database.strings("SELECT name FROM schema_migrations ORDER BY version")
                == ["init_schema", "odds_read_models", "feed_status"])

        // The SQL files themselves are also safe to run twice outside the runner (compose uses psql).
        try await database.withConnection { connection in
            for migration in try MigrationLoader.load(from: MigrationsFolder.url) {
                for statement in SQLScript.statements(in: migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
        }
    }

    @Test func concurrentRunnersApplyEachMigrationOnce() async throws {
        let database = try await ScratchDatabase.create()
        defer { Task { await database.drop() } }
        let runner = try projectRunner()
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask { try await database.withConnection { try await runner.migrate(on: $0) } }
            }
            return try await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        #expect(results.flatMap { $0 }.sorted() == [1, 2, 3])
        #expect(try await database.strings("SELECT count(*)::text FROM schema_migrations") == ["3"])
    }

    @Test func failingMigrationRollsBackCompletely() async throws {
        let database = try await ScratchDatabase.create()
        defer { Task { await database.drop() } }
        var migrations = try MigrationLoader.load(from: MigrationsFolder.url)
        let broken = (migrations.map(\.version).max() ?? 0) + 1
        migrations.append(Migration(version: broken, name: "broken", sql: """
            CREATE TABLE half_done (x int);
            INSERT INTO no_such_table VALUES (1);
            """))
        let runner = MigrationRunner(migrations: migrations, logger: logger)
        await #expect(throws: MigrationError.self) {
            try await database.withConnection { try await runner.migrate(on: $0) }
        }
        #expect(try await database.strings("SELECT version::text FROM schema_migrations ORDER BY version")
                == (1..<broken).map { "\($0)" })
        #expect(try await database.strings("SELECT coalesce(to_regclass('public.half_done')::text, 'absent')") == ["absent"])
        let status = try await database.withConnection { try await runner.status(on: $0) }
        #expect(status.pending.map(\.version) == [broken])
    }

    @Test func editedMigrationIsDetected() async throws {
        let database = try await ScratchDatabase.create()
        defer { Task { await database.drop() } }
        try await database.withConnection { try await projectRunner().migrate(on: $0) }
        var edited = try MigrationLoader.load(from: MigrationsFolder.url)
        edited[0] = Migration(version: 1, name: edited[0].name, sql: edited[0].sql + "\n-- edited")
        let runner = MigrationRunner(migrations: edited, logger: logger)
        await #expect(throws: MigrationError.self) {
            try await database.withConnection { try await runner.migrate(on: $0) }
        }
        let olderCode = MigrationRunner(migrations: Array(edited.prefix(0)), logger: logger)
        await #expect(throws: MigrationError.self) {
            try await database.withConnection { try await olderCode.status(on: $0) }
        }
    }

    @Test func upsertOnlyWinsWithANewerVersion() async throws {
        let database = try await ScratchDatabase.create()
        defer { Task { await database.drop() } }
        try await database.withConnection { try await projectRunner().migrate(on: $0) }
        try await database.withConnection { connection in
            try await connection.query("""
                INSERT INTO events (event_id, home_team, away_team, last_update_at)
                VALUES ('MATCH_001', 'Flamengo', 'Palmeiras', now())
                """, logger: logger)
            func upsert(_ version: Int64, _ home: Double) async throws -> Bool {
                let odds = #"{"home":\#(home),"draw":3.3,"away":3.6}"#
                let rows = try await connection.query("""
                    SELECT upsert_odds_current('MATCH_001', '1x2', 'Flamengo', 'Palmeiras', \(odds)::jsonb,
                                               'open', \(version), now(), 'test')
                    """, logger: logger)
                var won = false
                for try await value in rows.decode(Bool.self) { won = value }
                return won
            }
            #expect(try await upsert(5, 2.0))
            #expect(try await upsert(7, 2.1))
            #expect(try await upsert(6, 9.9) == false)
            #expect(try await upsert(7, 9.9) == false)
            let rows = try await connection.query(
                "SELECT version, (odds->>'home')::float8 FROM odds_current WHERE event_id = 'MATCH_001'", logger: logger)
            for try await (version, home) in rows.decode((Int64, Double).self) {
                #expect(version == 7)
                #expect(home == 2.1)
            }
            // History holds a version once: a replayed insert is refused by the unique constraint.
            let insertHistory: PostgresQuery = """
                INSERT INTO odds_history (event_id, market, version, odds, status, updated_at, source)
                VALUES ('MATCH_001', '1x2', 7, '{}'::jsonb, 'open', now(), 'test')
                ON CONFLICT (event_id, market, version) DO NOTHING
                """
            try await connection.query(insertHistory, logger: logger)
            try await connection.query(insertHistory, logger: logger)
            let count = try await connection.query("SELECT count(*) FROM odds_history", logger: logger)
            for try await value in count.decode(Int.self) { #expect(value == 1) }
        }
    }

    @Test func migrateCommandAppliesThenReportsCurrentAndFailsClearly() async throws {
        let database = try await ScratchDatabase.create()
        defer { Task { await database.drop() } }
        let binary = try TestInfrastructure.binDirectory().appendingPathComponent("migrate")
        let dsnText = database.dsnText

        func run(_ arguments: [String]) async throws -> (Int32, String) {
            try await ManagedProcess.run(binary, arguments: arguments, environment: ["LOG_FORMAT": "text"], timeout: .seconds(60))
        }

        let status = try await run(["--dsn", dsnText, "--dir", MigrationsFolder.url.path, "--status"])
        #expect(status.0 == 3)
        #expect(status.1.contains("pending: V1__init_schema V2__odds_read_models"))
        let first = try await run(["--dsn", dsnText, "--dir", MigrationsFolder.url.path])
        #expect(first.0 == 0, "\(first.1)")
        #expect(first.1.contains("applied V1, V2"))
        let second = try await run(["--dsn", dsnText, "--dir", MigrationsFolder.url.path])
        #expect(second.0 == 0)
        #expect(second.1.contains("schema is current"))

        let port = try TestInfrastructure.freePort()
        let unreachable = try await run(["--dsn", "postgres://odds:topsecret@127.0.0.1:\(port)/odds", "--dir", MigrationsFolder.url.path])
        #expect(unreachable.0 != 0)
        #expect(unreachable.1.contains("migrate: cannot connect to postgres://odds:***@127.0.0.1:\(port)/odds"))
        #expect(!unreachable.1.contains("topsecret"))
        let malformed = try await run(["--dsn", "mysql://nope", "--dir", MigrationsFolder.url.path])
        #expect(malformed.0 != 0)
        #expect(malformed.1.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
        #expect(malformed.1.contains("invalid POSTGRES_DSN"))
    }
}
