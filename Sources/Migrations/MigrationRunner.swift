import Foundation
import Logging
import PostgresNIO

/// One file `V<version>__<name>.sql` of the migrations folder.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// FNV-1a of the file text, recorded so that editing an applied migration is detected.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

public enum MigrationError: Error, CustomStringConvertible, Sendable {
    case folderUnreadable(String)
    case badFileName(String)
    case duplicateVersion(Int)
    case checksumMismatch(version: Int, name: String)
    case unknownAppliedVersion(Int)
    case failed(version: Int, name: String, statement: String, reason: String)

    public var description: String {
        switch self {
        case .folderUnreadable(let path): "cannot read migrations folder \(path)"
        case .badFileName(let name): "migration file \(name) is not named V<number>__<name>.sql"
        case .duplicateVersion(let version): "two migration files have version \(version)"
        case .checksumMismatch(let version, let name):
            "migration V\(version) \(name) was changed after it was applied; add a new migration instead"
        case .unknownAppliedVersion(let version):
            "the database has migration V\(version) applied, which is not in the migrations folder (newer code ran here?)"
        case .failed(let version, let name, let statement, let reason):
            "migration V\(version) \(name) failed (rolled back): \(reason) in: \(statement.prefix(120))"
        }
    }
}

public enum MigrationLoader {
    /// Reads every `V<number>__<name>.sql` in `folder`, ordered by version.
    public static func load(from folder: URL) throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        } catch {
            throw MigrationError.folderUnreadable(folder.path)
        }
        var migrations: [Migration] = []
        for fileName in names where fileName.hasSuffix(".sql") {
            guard fileName.hasPrefix("V"), let separator = fileName.range(of: "__"),
                  let version = Int(fileName[fileName.index(after: fileName.startIndex)..<separator.lowerBound]),
                  version > 0
            else { throw MigrationError.badFileName(fileName) }
            let name = String(fileName[separator.upperBound...].dropLast(4))
            let sql = try String(contentsOf: folder.appendingPathComponent(fileName), encoding: .utf8)
            migrations.append(Migration(version: version, name: name, sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw MigrationError.duplicateVersion(next.version)
        }
        return migrations
    }
}

/// Applies missing migrations in order, each in its own transaction, and records them in
/// `schema_migrations`. Safe to run twice (applied versions are skipped) and concurrently (a
/// PostgreSQL advisory lock lets one runner work at a time; the others then find nothing to do).
public struct MigrationRunner: Sendable {
    /// Arbitrary constant shared by every runner of this project ("odds" in ASCII).
    static let advisoryLockKey: Int64 = 0x6F64_6473

    public struct Status: Sendable, Equatable {
        public var applied: [Int]
        public var pending: [Migration]
        public var isCurrent: Bool { pending.isEmpty }
    }

    let migrations: [Migration]
    let logger: Logger

    public init(migrations: [Migration], logger: Logger) {
        self.migrations = migrations
        self.logger = logger
    }

    /// What is applied and what is missing, without changing anything.
    public func status(on connection: PostgresConnection) async throws -> Status {
        let exists = try await connection.query(
            "SELECT to_regclass('public.schema_migrations') IS NOT NULL", logger: logger)
        var tableExists = false
        for try await (value) in exists.decode(Bool.self) { tableExists = value }
        let applied = tableExists ? try await appliedMigrations(on: connection) : [:]
        try verify(applied: applied)
        return Status(applied: applied.keys.sorted(), pending: migrations.filter { applied[$0.version] == nil })
    }

    /// Applies what is missing; returns the versions applied by this call.
    @discardableResult
    public func migrate(on connection: PostgresConnection) async throws -> [Int] {
        try await connection.query("SELECT pg_advisory_lock(\(Self.advisoryLockKey))", logger: logger)
        do {
            let appliedNow = try await migrateHoldingLock(on: connection)
            try await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
            return appliedNow
        } catch {
            // The session lock is released when the connection closes if this unlock fails too.
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.advisoryLockKey))", logger: logger)
            throw error
        }
    }

    private func migrateHoldingLock(on connection: PostgresConnection) async throws -> [Int] {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer     PRIMARY KEY,
                name        text        NOT NULL,
                checksum    text        NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let applied = try await appliedMigrations(on: connection)
        try verify(applied: applied)
        var appliedNow: [Int] = []
        for migration in migrations where applied[migration.version] == nil {
            try await apply(migration, on: connection)
            appliedNow.append(migration.version)
        }
        if appliedNow.isEmpty {
            logger.info("schema is current", metadata: ["version": "\(migrations.last?.version ?? 0)"])
        }
        return appliedNow
    }

    private func apply(_ migration: Migration, on connection: PostgresConnection) async throws {
        let started = ContinuousClock.now
        try await connection.query("BEGIN", logger: logger)
        do {
            for statement in SQLScript.statements(in: migration.sql) {
                do {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                } catch let error as PSQLError {
                    throw MigrationError.failed(version: migration.version, name: migration.name, statement: statement,
                                                reason: error.serverInfo?[.message] ?? "\(error.code)")
                }
            }
            try await connection.query(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                logger: logger)
            try await connection.query("COMMIT", logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        logger.info("applied migration", metadata: [
            "version": "\(migration.version)", "name": "\(migration.name)",
            "duration": "\(ContinuousClock.now - started)",
        ])
    }

    private func appliedMigrations(on connection: PostgresConnection) async throws -> [Int: String] {
        var applied: [Int: String] = [:]
        let rows = try await connection.query("SELECT version, checksum FROM schema_migrations", logger: logger)
        for try await (version, checksum) in rows.decode((Int, String).self) {
            applied[version] = checksum
        }
        return applied
    }

    private func verify(applied: [Int: String]) throws {
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, checksum) in applied.sorted(by: { $0.key < $1.key }) {
            guard let migration = known[version] else { throw MigrationError.unknownAppliedVersion(version) }
            guard migration.checksum == checksum else {
                throw MigrationError.checksumMismatch(version: version, name: migration.name)
            }
        }
    }
}
