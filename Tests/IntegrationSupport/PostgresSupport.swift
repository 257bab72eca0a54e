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

    /// Runs a command to completion with posix_spawn + waitpid. Foundation's Process is not used
    /// here: on Linux it notices a child's exit only when every inherited descriptor closes, and
    /// `pg_ctl start` leaves the server (a grandchild) holding them, so it would wait forever.
    static func run(_ executable: String, _ arguments: [String]) throws {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        for descriptor: Int32 in [0, 1, 2] {
            posix_spawn_file_actions_addopen(&fileActions, descriptor, "/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Children get default signal handling and an empty mask, whatever the test runner blocked.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &fileActions, &attributes, argv, environ)
        guard spawned == 0 else {
            throw TestInfrastructure.Missing(variable: "\(executable) (posix_spawn error \(spawned))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else {
            throw TestInfrastructure.Missing(variable: "\(executable) \(arguments.joined(separator: " ")) (wait status \(status))")
        }
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
