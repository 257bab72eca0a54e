import ArgumentParser
import Foundation
import Logging
import Migrations
import PostgresNIO
import ServiceSupport

/// `migrate`: applies the SQL files of `migrations/` that the database does not have yet.
@main
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending PostgreSQL migrations (V<n>__<name>.sql) in order, each in a transaction.")

    @Option(help: "PostgreSQL DSN (default: $POSTGRES_DSN or postgres://odds:odds@127.0.0.1:5433/odds).")
    var dsn: String?

    @Option(help: "Folder holding the migration files (default: $MIGRATIONS_DIR or ./migrations).")
    var dir: String?

    @Flag(help: "Only report applied and pending migrations; exit 3 when some are pending.")
    var status = false

    func run() async throws {
        let reader = ConfigurationReader(overrides: ["POSTGRES_DSN": dsn, "MIGRATIONS_DIR": dir])
        let logger: Logger
        let postgres: PostgresDSN
        let migrations: [Migration]
        do {
            LoggingSetup.bootstrap(service: "migrate", configuration: try LoggingConfiguration(reader: reader))
            logger = Logger(label: "migrate")
            postgres = try PostgresDSN(reader.string("POSTGRES_DSN", default: "postgres://odds:odds@127.0.0.1:5433/odds"))
            migrations = try MigrationLoader.load(
                from: URL(fileURLWithPath: reader.string("MIGRATIONS_DIR", default: "migrations"), isDirectory: true))
        } catch {
            throw fail("\(error)")
        }

        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(
                configuration: try postgres.connectionConfiguration(), id: 1, logger: logger)
        } catch {
            throw fail("cannot connect to \(postgres): \(Self.reason(error))")
        }
        defer { Task { try? await connection.close() } }

        let runner = MigrationRunner(migrations: migrations, logger: logger)
        do {
            if status {
                let report = try await runner.status(on: connection)
                print("applied: \(report.applied.map { "V\($0)" }.joined(separator: " "))")
                print("pending: \(report.pending.map { "V\($0.version)__\($0.name)" }.joined(separator: " "))")
                try? await connection.close()
                if !report.isCurrent { throw ExitCode(3) }
                return
            }
            let applied = try await runner.migrate(on: connection)
            print(applied.isEmpty
                  ? "migrate: schema is current (\(migrations.count) migrations) on \(postgres)"
                  : "migrate: applied \(applied.map { "V\($0)" }.joined(separator: ", ")) on \(postgres)")
            try? await connection.close()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            try? await connection.close()
            throw fail(Self.reason(error))
        }
    }

    func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("migrate: \(message)\n".utf8))
        return ExitCode.failure
    }

    static func reason(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            if let underlying = psql.underlying { return "\(underlying)" }
            return "\(psql.code)"
        }
        return "\(error)"
    }
}
