import Foundation
import NIOSSL
import PostgresNIO

/// A PostgreSQL address as `postgres://user:password@host:port/database?sslmode=disable`.
/// The password never appears in `description`, so the value is safe to log.
public struct PostgresDSN: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let reason: String
        public var description: String { "invalid POSTGRES_DSN: \(reason)" }
    }

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String, requireTLS: Bool = false) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
    }

    public init(_ text: String) throws {
        guard let components = URLComponents(string: text),
              let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql"
        else { throw Invalid(reason: "expected postgres://user:password@host:port/database") }
        guard let host = components.host, !host.isEmpty else { throw Invalid(reason: "missing host") }
        guard let user = components.user, !user.isEmpty else { throw Invalid(reason: "missing user name") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw Invalid(reason: "missing database name") }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw Invalid(reason: "port \(port) out of range") }
        var requireTLS = false
        for item in components.queryItems ?? [] where item.name == "sslmode" {
            switch item.value ?? "" {
            case "disable", "allow", "prefer": requireTLS = false
            case "require", "verify-ca", "verify-full": requireTLS = true
            case let other: throw Invalid(reason: "unsupported sslmode \(other)")
            }
        }
        self.init(host: host, port: port, username: user.removingPercentEncoding ?? user,
                  password: components.password?.removingPercentEncoding ?? components.password,
                  database: database.removingPercentEncoding ?? database, requireTLS: requireTLS)
    }

    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    public func connectionConfiguration() throws -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: try tlsMode())
    }

    public func clientConfiguration() throws -> PostgresClient.Configuration {
        PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
    }

    private func tlsMode() throws -> PostgresConnection.Configuration.TLS {
        requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
    }
}
