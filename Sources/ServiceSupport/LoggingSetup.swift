import Foundation
import Logging

public enum LogFormat: String, CaseIterable, Sendable {
    case json
    case text
}

/// Logging settings shared by every executable (`LOG_LEVEL`, `LOG_FORMAT`).
public struct LoggingConfiguration: Sendable {
    public var level: Logger.Level
    public var format: LogFormat

    public init(level: Logger.Level = .info, format: LogFormat = .json) {
        self.level = level
        self.format = format
    }

    public init(reader: ConfigurationReader) throws {
        let levelText = reader.string("LOG_LEVEL", default: "info").lowercased()
        guard let parsed = Logger.Level(rawValue: levelText == "warn" ? "warning" : levelText) else {
            throw ConfigurationError(key: "LOG_LEVEL", reason: "must be one of trace|debug|info|notice|warning|error|critical, got \"\(levelText)\"")
        }
        level = parsed
        format = try reader.choice("LOG_FORMAT", default: LogFormat.json)
    }
}

public enum LoggingSetup {
    /// Installs the process-wide log handler once; later calls are ignored (tests, re-entry).
    public static func bootstrap(service: String, configuration: LoggingConfiguration) {
        bootstrapOnce.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap { label in
                var handler: any LogHandler = switch configuration.format {
                case .json: JSONLogHandler(label: label, service: service)
                case .text: StreamLogHandler.standardError(label: label)
                }
                handler.logLevel = configuration.level
                return handler
            }
        }
    }

    private static let bootstrapOnce = LockedValue(false)
}

/// One JSON object per line on stderr: `ts`, `level`, `service`, `logger`, `msg` and metadata.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let service: String
    private static let output = LockedValue(())

    public init(label: String, service: String) {
        self.label = label
        self.service = service
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: Any] = [
            "ts": Self.timestamp(),
            "level": event.level.rawValue,
            "service": service,
            "logger": label,
            "msg": event.message.description,
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged where fields[key] == nil { fields[key] = Self.plain(value) }
        if event.level >= .error { fields["source"] = "\(event.file):\(event.line)" }
        guard var line = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        line.append(0x0A)
        Self.output.withLock { _ in FileHandle.standardError.write(line) }
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(plain)
        case .dictionary(let values): values.mapValues(plain)
        }
    }

    static func timestamp() -> String {
        let now = Date().timeIntervalSince1970
        let millis = Int64((now * 1000).rounded(.down))
        var time = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                      parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, Int32(millis % 1000))
    }
}

/// A tiny lock-protected box (Foundation's NSLock), so this module needs no extra dependency.
public final class LockedValue<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    public init(_ value: Value) { self.value = value }
    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body(&value)
    }
}
