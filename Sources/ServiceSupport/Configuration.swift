import Foundation

/// A configuration value that cannot be used. Its description is the one line printed at start.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// Process exit status for a wrong setting (sysexits' EX_CONFIG): every service uses it, so
    /// a supervisor can tell "fix the configuration" from "retry".
    public static let exitStatus: Int32 = 78

    public let key: String
    public let reason: String
    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
    public var description: String { "invalid configuration: \(key) \(reason)" }
}

/// Reads settings from command-line overrides first, then environment variables, then defaults.
/// Every accessor validates and throws a `ConfigurationError` naming the key, so a wrong value
/// fails at start with one clear line.
public struct ConfigurationReader: Sendable {
    let environment: [String: String]
    let overrides: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, overrides: [String: String?] = [:]) {
        self.environment = environment
        self.overrides = overrides.compactMapValues { $0 }
    }

    /// The raw text of `key`, or nil when neither an override nor the environment sets it.
    public func raw(_ key: String) -> String? {
        if let value = overrides[key] { return value }
        if let value = environment[key], !value.trimmingCharacters(in: .whitespaces).isEmpty { return value }
        return nil
    }

    public func string(_ key: String, default defaultValue: String) -> String {
        raw(key)?.trimmingCharacters(in: .whitespaces) ?? defaultValue
    }

    public func integer(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = raw(key) else { return defaultValue }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(key: key, reason: "must be an integer, got \"\(text)\"")
        }
        guard range.contains(value) else {
            throw ConfigurationError(key: key, reason: "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    public func port(_ key: String, default defaultValue: Int) throws -> Int {
        try integer(key, default: defaultValue, range: 1...65_535)
    }

    public func milliseconds(_ key: String, default defaultValue: Int, range: ClosedRange<Int> = 0...3_600_000) throws -> Duration {
        .milliseconds(try integer(key, default: defaultValue, range: range))
    }

    public func boolean(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let text = raw(key) else { return defaultValue }
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError(key: key, reason: "must be true or false, got \"\(text)\"")
        }
    }

    public func choice<T: RawRepresentable & CaseIterable>(_ key: String, default defaultValue: T) throws -> T
    where T.RawValue == String {
        guard let text = raw(key) else { return defaultValue }
        guard let value = T(rawValue: text.lowercased()) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: "|")
            throw ConfigurationError(key: key, reason: "must be one of \(allowed), got \"\(text)\"")
        }
        return value
    }

    /// A `host:port` address (IPv4, name, or `[v6]`).
    public func hostAndPort(_ key: String, default defaultValue: String) throws -> HostAndPort {
        let text = string(key, default: defaultValue)
        guard let address = HostAndPort(text) else {
            throw ConfigurationError(key: key, reason: "must be host:port, got \"\(text)\"")
        }
        return address
    }

    /// A comma-separated list of `host:port` (the Kafka bootstrap list).
    public func hostAndPortList(_ key: String, default defaultValue: String) throws -> [HostAndPort] {
        let text = string(key, default: defaultValue)
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty else { throw ConfigurationError(key: key, reason: "must list at least one host:port") }
        return try parts.map { part in
            guard let address = HostAndPort(part) else {
                throw ConfigurationError(key: key, reason: "must be a comma-separated list of host:port, got \"\(text)\"")
            }
            return address
        }
    }

    public func url(_ key: String, default defaultValue: String, schemes: Set<String>) throws -> URL {
        let text = string(key, default: defaultValue)
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), schemes.contains(scheme),
              let host = url.host, !host.isEmpty
        else {
            throw ConfigurationError(key: key, reason: "must be a \(schemes.sorted().joined(separator: "/")) URL, got \"\(text)\"")
        }
        if let port = url.port, !(1...65_535).contains(port) {
            throw ConfigurationError(key: key, reason: "has port \(port) out of range")
        }
        return url
    }
}

public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let hostPart: Substring
        let portPart: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]"), trimmed[trimmed.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            portPart = trimmed[trimmed.index(close, offsetBy: 2)...]
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { return nil }
            hostPart = trimmed[..<colon]
            portPart = trimmed[trimmed.index(after: colon)...]
        }
        guard !hostPart.isEmpty, !hostPart.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "," }),
              let port = Int(portPart), (1...65_535).contains(port)
        else { return nil }
        host = String(hostPart)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
