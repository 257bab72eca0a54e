import Foundation
import Testing
@testable import Migrations

@Suite struct SQLScriptTests {
    @Test func splitsOnSemicolonsOutsideQuotesAndBodies() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            /* block; comment */ INSERT INTO a VALUES ('it''s; fine');
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;
            CREATE FUNCTION g() RETURNS int LANGUAGE sql AS $body$ SELECT 2; $body$;
            SELECT "weird;name" FROM a
            """
        let statements = SQLScript.statements(in: script)
        #expect(statements.count == 5)
        #expect(statements[0].hasSuffix("DEFAULT 'a;b')"))
        #expect(statements[1].contains("'it''s; fine'"))
        #expect(statements[2].contains("RETURN 1; END; $$"))
        #expect(statements[3].contains("$body$ SELECT 2; $body$"))
        #expect(statements[4] == #"SELECT "weird;name" FROM a"#)
    }

    @Test func ignoresEmptyAndCommentOnlyStatements() {
        #expect(SQLScript.statements(in: ";;\n-- only a comment\n;").isEmpty)
    }

    @Test func projectMigrationsSplitIntoStatements() throws {
        let migrations = try MigrationLoader.load(from: MigrationsFolder.url)
        #expect(migrations.map(\.version) == [1, 2, 3])
        #expect(migrations.map(\.name) == ["init_schema", "odds_read_models", "feed_status"])
        for migration in migrations {
            #expect(!SQLScript.statements(in: migration.sql).isEmpty)
        }
        let functionStatement = SQLScript.statements(in: migrations[1].sql).first { $0.contains("FUNCTION") }
        #expect(functionStatement?.hasSuffix("$$") == true)
    }
}

@Suite struct MigrationLoaderTests {
    func folder(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(to: url.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return url
    }

    @Test func ordersByNumberNotText() throws {
        let url = try folder(["V10__ten.sql": "SELECT 10", "V2__two.sql": "SELECT 2", "README.md": "x"])
        #expect(try MigrationLoader.load(from: url).map(\.version) == [2, 10])
    }

    @Test func rejectsBadNamesAndDuplicates() throws {
        #expect(throws: MigrationError.self) { try MigrationLoader.load(from: try folder(["init.sql": "SELECT 1"])) }
        #expect(throws: MigrationError.self) { try MigrationLoader.load(from: try folder(["V1__a.sql": "", "V01__b.sql": ""])) }
        #expect(throws: MigrationError.self) { try MigrationLoader.load(from: URL(fileURLWithPath: "/nonexistent/folder")) }
    }

    @Test func checksumChangesWithTheText() {
        #expect(Migration(version: 1, name: "a", sql: "SELECT 1").checksum != Migration(version: 1, name: "a", sql: "SELECT 2").checksum)
        #expect(Migration(version: 1, name: "a", sql: "SELECT 1").checksum == Migration(version: 9, name: "b", sql: "SELECT 1").checksum)
    }
}

@Suite struct PostgresDSNTests {
    @Test func parsesAndMasksThePassword() throws {
        let dsn = try PostgresDSN("postgres://odds:s3cr%40t@db.local:6543/odds_db?sslmode=disable")
        #expect(dsn.host == "db.local")
        #expect(dsn.port == 6543)
        #expect(dsn.username == "odds")
        #expect(dsn.password == "s3cr@t")
        #expect(dsn.database == "odds_db")
        #expect(!dsn.description.contains("s3cr"))
        #expect(try PostgresDSN("postgresql://u@h/d").port == 5432)
        #expect(try PostgresDSN("postgres://u:p@h/d?sslmode=require").requireTLS)
    }

    @Test(arguments: ["", "mysql://u:p@h/d", "postgres://h/d", "postgres://u:p@h", "postgres://u:p@:5432/d",
                      "postgres://u:p@h/d?sslmode=bogus", "not a url"])
    func rejectsInvalid(text: String) {
        #expect(throws: PostgresDSN.Invalid.self) { try PostgresDSN(text) }
    }
}

enum MigrationsFolder {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("migrations", isDirectory: true)
}
