import Foundation
import Logging
import Migrations
import PostgresNIO

/// A throwaway database on the test PostgreSQL (the role has CREATEDB), migrated on demand and
/// dropped by `drop()`.
public struct ScratchDatabase: Sendable {
    public let dsn: PostgresDSN
    public let admin: PostgresDSN
    public let logger = Logger(label: "scratch-database")

    /// Creates an empty database on `admin` (default: the shared test PostgreSQL).
    public static func create(admin: PostgresDSN? = nil) async throws -> ScratchDatabase {
        let admin = try admin ?? PostgresDSN(try TestInfrastructure.postgresDSN())
        var dsn = admin
        dsn.database = TestInfrastructure.uniqueName("scratch").lowercased()
        let scratch = ScratchDatabase(dsn: dsn, admin: admin)
        try await scratch.withAdmin { connection in
            try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(dsn.database)\""), logger: scratch.logger)
        }
        return scratch
    }

    /// The DSN text for child processes (`POSTGRES_DSN`).
    public var dsnText: String {
        "postgres://\(dsn.username)\(dsn.password.map { ":\($0)" } ?? "")@\(dsn.host):\(dsn.port)/\(dsn.database)"
    }

    @discardableResult
    public func withAdmin<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await with(admin, body)
    }

    @discardableResult
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await with(dsn, body)
    }

    private func with<T>(_ target: PostgresDSN, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(
            configuration: try target.connectionConfiguration(), id: .random(in: 1...1_000_000), logger: logger)
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Applies the project's migrations (migrations/ at the repository root).
    public func migrate() async throws {
        let migrations = try MigrationLoader.load(from: Self.migrationsFolder)
        try await withConnection { try await MigrationRunner(migrations: migrations, logger: logger).migrate(on: $0) }
    }

    public static let migrationsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("migrations", isDirectory: true)

    public func drop() async {
        _ = try? await withAdmin { connection in
            try await connection.query(
                PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(dsn.database)\" WITH (FORCE)"), logger: logger)
        }
    }

    /// Runs `sql` and returns the first column of every row as text.
    public func strings(_ sql: String) async throws -> [String] {
        try await withConnection { connection in
            var values: [String] = []
            for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).decode(String.self) {
                values.append(value)
            }
            return values
        }
    }
}

/// A private PostgreSQL cluster on a free port, for tests that stop and restart the database.
/// Runs as the `postgres` user when the tests run as root (PostgreSQL refuses root).
public final class PostgresServerProcess: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    let binaries: URL

    public var adminDSN: PostgresDSN {
        PostgresDSN(host: "127.0.0.1", port: port, username: "postgres", password: nil, database: "postgres")
    }

    public init() throws {
        port = try TestInfrastructure.freePort()
        directory = URL(fileURLWithPath: "/tmp/odds-pg-\(UUID().uuidString.prefix(8))")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let newest = versions.compactMap(Int.init).max() else {
            throw TestInfrastructure.Missing(variable: "PostgreSQL server binaries under /usr/lib/postgresql")
        }
        binaries = URL(fileURLWithPath: "/usr/lib/postgresql/\(newest)/bin")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try Self.run("/bin/chown", ["-R", "postgres:postgres", directory.path]) }
        try asPostgres(binaries.appendingPathComponent("initdb").path,
                       ["-D", directory.appendingPathComponent("data").path, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    }

    public func start() throws {
        try asPostgres(binaries.appendingPathComponent("pg_ctl").path, [
            "-D", directory.appendingPathComponent("data").path, "-l", directory.appendingPathComponent("log").path,
            "-w", "-t", "30", "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c fsync=off", "start",
        ])
    }

    /// `immediate` is a crash-like stop; `fast` is a clean one.
    public func stop(mode: String = "immediate") throws {
        try asPostgres(binaries.appendingPathComponent("pg_ctl").path,
                       ["-D", directory.appendingPathComponent("data").path, "-m", mode, "-w", "stop"])
    }

    func asPostgres(_ executable: String, _ arguments: [String]) throws {
        if getuid() == 0 {
            try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", executable] + arguments)
        } else {
            try Self.run(executable, arguments)
        }
    }

    /// Runs to completion on this thread (`pg_ctl start` returns once the server, a
    /// grandchild that keeps running, is up).
    static func run(_ executable: String, _ arguments: [String]) throws {
        try ChildSpawn.runBlocking(executable, arguments)
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
