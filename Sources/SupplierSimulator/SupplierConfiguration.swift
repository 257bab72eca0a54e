import Foundation
import ServiceSupport

/// Every supplier setting, read from flags, then environment variables, then defaults.
struct SupplierConfiguration: Sendable, Equatable {
    var host = "0.0.0.0"
    var httpPort = 8081
    var metricsPort = 9094
    /// Updates per second in total, over all markets.
    var rate = 20
    /// Generated events on top of the four classic matches.
    var generatedEvents = 6
    var seed: UInt64 = 0
    var journalPath: String?
    var faults = FaultRates()
    /// Drop every connection (after writing what is buffered) this often; nil = never.
    var disconnectEvery: Duration?
    /// Frames one client may have buffered before it counts as too slow.
    var clientBufferCapacity = 50_000
    /// The replay log keeps at most this many stream frames…
    var replayFrames = 100_000
    /// …and none older than this.
    var replayMaxAge: Duration = .seconds(600)
    /// The feed stops emitting (connections stay open) after this many stream frames; nil =
    /// never. Lets a test end the stream on a chosen frame.
    var maxFrames: UInt64?
    /// An alive frame goes to every client after this long without anything else to send.
    var aliveInterval: Duration = .seconds(1)

    static let rateRange = 1...50_000

    init() {}

    init(reader: ConfigurationReader, randomSeed: () -> UInt64 = { UInt64.random(in: 0...UInt64.max) }) throws {
        host = reader.string("HTTP_HOST", default: "0.0.0.0")
        httpPort = try reader.port("HTTP_PORT", default: 8081)
        metricsPort = try reader.port("METRICS_PORT", default: 9094)
        if httpPort == metricsPort {
            throw ConfigurationError(key: "METRICS_PORT", reason: "must differ from HTTP_PORT (\(httpPort))")
        }
        rate = try reader.integer("SUPPLIER_RATE", default: 20, range: Self.rateRange)
        generatedEvents = try reader.integer("SUPPLIER_EVENTS", default: 6, range: 0...10_000)
        if let text = reader.raw("SUPPLIER_SEED") {
            guard let value = UInt64(text.trimmingCharacters(in: .whitespaces)) else {
                throw ConfigurationError(key: "SUPPLIER_SEED", reason: "must be an unsigned integer, got \"\(text)\"")
            }
            seed = value
        } else {
            seed = randomSeed()
        }
        journalPath = reader.raw("SUPPLIER_JOURNAL").map { $0.trimmingCharacters(in: .whitespaces) }
        faults = FaultRates(
            malformed: try Self.probability(reader, "SUPPLIER_FAULT_MALFORMED"),
            invalid: try Self.probability(reader, "SUPPLIER_FAULT_INVALID"),
            duplicate: try Self.probability(reader, "SUPPLIER_FAULT_DUPLICATE"),
            outOfOrder: try Self.probability(reader, "SUPPLIER_FAULT_OUT_OF_ORDER"))
        if faults.total > 1 {
            throw ConfigurationError(key: "SUPPLIER_FAULT_*", reason: "fault probabilities must add up to at most 1, got \(faults.total)")
        }
        let every = try Self.decimal(reader, "SUPPLIER_DISCONNECT_EVERY", range: 0...86_400)
        disconnectEvery = every > 0 ? .milliseconds(Int64((every * 1000).rounded())) : nil
        clientBufferCapacity = try reader.integer("SUPPLIER_CLIENT_BUFFER", default: 50_000, range: 100...10_000_000)
        replayFrames = try reader.integer("SUPPLIER_REPLAY_FRAMES", default: 100_000, range: 1...10_000_000)
        let replaySeconds = try Self.decimal(reader, "SUPPLIER_REPLAY_SECONDS", range: 0...86_400, default: 600)
        guard replaySeconds > 0 else {
            throw ConfigurationError(key: "SUPPLIER_REPLAY_SECONDS", reason: "must be above 0, got \(replaySeconds)")
        }
        replayMaxAge = .milliseconds(Int64((replaySeconds * 1000).rounded()))
        let maxFrames = try reader.integer("SUPPLIER_MAX_FRAMES", default: 0, range: 0...Int.max)
        self.maxFrames = maxFrames > 0 ? UInt64(maxFrames) : nil
        aliveInterval = try reader.milliseconds("SUPPLIER_ALIVE_INTERVAL_MS", default: 1_000, range: 10...60_000)
    }

    static func probability(_ reader: ConfigurationReader, _ key: String) throws -> Double {
        try decimal(reader, key, range: 0...1)
    }

    static func decimal(_ reader: ConfigurationReader, _ key: String, range: ClosedRange<Double>, default defaultValue: Double = 0) throws -> Double {
        guard let text = reader.raw(key) else { return defaultValue }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw ConfigurationError(key: key, reason: "must be a number, got \"\(text)\"")
        }
        guard range.contains(value) else {
            throw ConfigurationError(key: key, reason: "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }
}
