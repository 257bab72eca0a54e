#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How to reach Redis and how long to wait for it.
///
/// Built from a URL (`redis://[[user]:password@]host[:port][/db]`) or a `host:port` address (the
/// `REDIS_ADDR` style); see `init(address:)`. The password never appears in `description`, so the
/// configuration can be logged.
public struct RedisConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    /// ACL user (Redis 6+). When nil and `password` is set, `AUTH password` is sent.
    public var username: String?
    public var password: String?
    /// Database selected with `SELECT` on every (re)connect; 0 sends no `SELECT`.
    public var database: Int
    /// Upper bound for establishing the TCP connection.
    public var connectTimeout: Duration
    /// Upper bound for each socket read/write while waiting for a reply (`redisSetTimeout`).
    /// Blocking commands (`BLPOP`, ...) must use shorter server-side timeouts than this.
    public var commandTimeout: Duration
    /// Number of pooled connections (and threads running the blocking hiredis calls) of `RedisClient`.
    public var poolSize: Int
    /// Callers that may wait for a free pooled connection at the same time; beyond that
    /// `RedisError.poolExhausted` is thrown instead of queueing without bound.
    public var maxWaitingRequests: Int

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(5),
        poolSize: Int = 4,
        maxWaitingRequests: Int = 10_000
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = max(1, poolSize)
        self.maxWaitingRequests = max(0, maxWaitingRequests)
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`, `host:port`, `host` or `[ipv6]:port`.
    /// Percent-encoded user and password are decoded. Throws `RedisError.invalidAddress` with the
    /// reason (the password is never part of the message).
    public init(address: String) throws {
        self.init()
        let trimmed = address.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw RedisError.invalidAddress("empty address") }

        var rest = Substring(trimmed)
        if let schemeEnd = rest.firstRange(of: "://") {
            let scheme = rest[..<schemeEnd.lowerBound].lowercased()
            guard scheme == "redis" else {
                throw RedisError.invalidAddress("unsupported scheme '\(scheme)' (only redis:// is supported; rediss/TLS is not) in '\(Self.redacted(trimmed))'")
            }
            rest = rest[schemeEnd.upperBound...]
            if let queryStart = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
                throw RedisError.invalidAddress("query parameters are not supported in '\(Self.redacted(trimmed))' (at '\(rest[queryStart...].prefix(20))')")
            }
            // Path: /db
            if let slash = rest.firstIndex(of: "/") {
                let path = rest[rest.index(after: slash)...]
                rest = rest[..<slash]
                if !path.isEmpty {
                    guard let db = Int(path), db >= 0 else {
                        throw RedisError.invalidAddress("database must be a non-negative integer, got '\(path)' in '\(Self.redacted(trimmed))'")
                    }
                    database = db
                }
            }
            // Userinfo: [user]:password@ or password@ is not valid URL syntax for a password, but
            // `user@` alone (no colon) is treated as a username without password.
            if let at = rest.lastIndex(of: "@") {
                let userinfo = rest[..<at]
                rest = rest[rest.index(after: at)...]
                if let colon = userinfo.firstIndex(of: ":") {
                    let user = try Self.percentDecoded(userinfo[..<colon], original: trimmed)
                    let pass = try Self.percentDecoded(userinfo[userinfo.index(after: colon)...], original: trimmed)
                    username = user.isEmpty ? nil : user
                    password = pass.isEmpty ? nil : pass
                } else {
                    let user = try Self.percentDecoded(userinfo, original: trimmed)
                    username = user.isEmpty ? nil : user
                }
            }
        } else if trimmed.contains("/") || trimmed.contains("@") {
            throw RedisError.invalidAddress("'\(Self.redacted(trimmed))' is neither host:port nor a redis:// URL")
        }
        (host, port) = try Self.parseHostPort(rest, original: trimmed)
    }

    /// Reads the address from the environment variable `variable` (default `REDIS_ADDR`, either
    /// `host:port` or a `redis://` URL), falling back to `defaultAddress` when it is unset or empty.
    public static func fromEnvironment(
        variable: String = "REDIS_ADDR",
        defaultAddress: String = "127.0.0.1:6379"
    ) throws -> RedisConfiguration {
        if let raw = getenv(variable), case let value = String(cString: raw), !value.isEmpty {
            do {
                return try RedisConfiguration(address: value)
            } catch RedisError.invalidAddress(let reason) {
                throw RedisError.invalidAddress("\(variable): \(reason)")
            }
        }
        return try RedisConfiguration(address: defaultAddress)
    }

    /// Same as `init(address:)`; reads better for `redis://` URLs.
    public init(url: String) throws {
        try self.init(address: url)
    }

    private static func parseHostPort(_ text: Substring, original: String) throws -> (String, Int) {
        var hostPart: Substring
        var portPart: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw RedisError.invalidAddress("unterminated IPv6 literal in '\(redacted(original))'")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw RedisError.invalidAddress("unexpected '\(after)' after IPv6 literal in '\(redacted(original))'")
                }
                portPart = after.dropFirst()
            }
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons > 1 {
                throw RedisError.invalidAddress("'\(redacted(original))': IPv6 hosts must be written in brackets, e.g. [::1]:6379")
            }
            if let colon = text.firstIndex(of: ":") {
                hostPart = text[..<colon]
                portPart = text[text.index(after: colon)...]
            } else {
                hostPart = text
            }
        }
        guard !hostPart.isEmpty else {
            throw RedisError.invalidAddress("missing host in '\(redacted(original))'")
        }
        let allowed = hostPart.allSatisfy { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" || $0 == ":" || $0 == "%" }
        guard allowed, hostPart.allSatisfy(\.isASCII) else {
            throw RedisError.invalidAddress("invalid host '\(hostPart)' in '\(redacted(original))'")
        }
        var port = 6379
        if let portPart {
            guard let value = Int(portPart), (1...65535).contains(value) else {
                throw RedisError.invalidAddress("port must be 1...65535, got '\(portPart)' in '\(redacted(original))'")
            }
            port = value
        }
        return (String(hostPart), port)
    }

    private static func percentDecoded(_ text: Substring, original: String) throws -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw RedisError.invalidAddress("bad percent-encoding in the credentials of '\(redacted(original))'")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The address with any credentials replaced, safe for logs and error messages.
    static func redacted(_ address: String) -> String {
        guard let schemeEnd = address.firstRange(of: "://") else { return address }
        let afterScheme = address[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
        guard let at = afterScheme[..<authorityEnd].lastIndex(of: "@") else { return address }
        return String(address[..<schemeEnd.upperBound]) + "***@" + String(afterScheme[afterScheme.index(after: at)...])
    }
}

extension RedisConfiguration: CustomStringConvertible {
    /// `redis://user:***@host:port/db`; never contains the password.
    public var description: String {
        var auth = ""
        if username != nil || password != nil {
            auth = "\(username ?? ""):\(password == nil ? "" : "***")@"
        }
        let hostText = host.contains(":") ? "[\(host)]" : host
        return "redis://\(auth)\(hostText):\(port)/\(database)"
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, at least 1 when positive.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(max(0, ms))
    }

    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
