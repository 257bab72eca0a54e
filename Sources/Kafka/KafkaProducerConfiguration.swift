/// Producer settings. Typed fields cover what this project tunes; `properties` passes any other
/// librdkafka property through (and wins over the typed fields).
/// See librdkafka's CONFIGURATION.md for the meaning of each property.
public struct KafkaProducerConfiguration: Sendable {
    public enum Acks: String, Sendable {
        case none = "0", leader = "1", all = "all"
    }

    public enum Compression: String, Sendable {
        case none, gzip, snappy, lz4, zstd
    }

    /// `bootstrap.servers`, e.g. "127.0.0.1:9092,127.0.0.1:9093".
    public var bootstrapServers: String
    /// `client.id`, shows up in broker logs and librdkafka log lines.
    public var clientID: String = "odds-pipeline"
    /// `enable.idempotence`: no duplicates and per-partition order even across retries.
    public var idempotent: Bool = true
    /// `acks`; idempotence requires `.all`.
    public var acks: Acks = .all
    /// `linger.ms`: how long to wait to fill a batch. Latency vs throughput.
    public var linger: Duration = .milliseconds(5)
    /// `batch.num.messages`: most messages per batch (MessageSet).
    public var batchMaxMessages: Int = 10_000
    /// `batch.size`: most bytes per batch.
    public var batchMaxBytes: Int = 1_000_000
    /// `queue.buffering.max.messages`: librdkafka's local queue, in messages.
    public var queueMaxMessages: Int = 100_000
    /// `queue.buffering.max.kbytes`: librdkafka's local queue, in KiB.
    public var queueMaxKilobytes: Int = 1_048_576
    /// `delivery.timeout.ms`: give up on a message (report an error) after this long.
    public var deliveryTimeout: Duration = .seconds(120)
    /// `request.timeout.ms` for produce requests.
    public var requestTimeout: Duration = .seconds(30)
    /// `compression.codec`.
    public var compression: Compression = .none
    /// Most messages enqueued but not yet reported back (for `enqueue`, a report counts until it
    /// is read from `deliveryReports`). `enqueue`/`send` wait when it is reached.
    /// Defaults to 10,000 (or `queueMaxMessages` if smaller): on the 2-core dev machine that gave
    /// the best throughput (~400-600k msg/s) and ~10 ms median delivery latency; a deeper queue
    /// only adds latency.
    public var maxInFlightMessages: Int?
    /// Any other librdkafka property, e.g. ["statistics.interval.ms": "5000"].
    public var properties: [String: String] = [:]

    public init(bootstrapServers: String) {
        self.bootstrapServers = bootstrapServers
    }

    var inFlightLimit: Int { max(1, maxInFlightMessages ?? min(10_000, queueMaxMessages)) }

    /// The complete librdkafka property set.
    public var librdkafkaProperties: [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "client.id": clientID,
            "enable.idempotence": idempotent ? "true" : "false",
            "acks": acks.rawValue,
            "linger.ms": "\(linger.kafkaMilliseconds)",
            "batch.num.messages": "\(batchMaxMessages)",
            "batch.size": "\(batchMaxBytes)",
            "queue.buffering.max.messages": "\(queueMaxMessages)",
            "queue.buffering.max.kbytes": "\(queueMaxKilobytes)",
            "delivery.timeout.ms": "\(deliveryTimeout.kafkaMilliseconds)",
            "request.timeout.ms": "\(requestTimeout.kafkaMilliseconds)",
            "compression.codec": compression.rawValue,
            // Only the fields we read are copied into delivery reports.
            "delivery.report.only.error": "false",
            // Requests go out when written: Nagle's algorithm would hold a small request while
            // the previous one is unacknowledged (librdkafka leaves it on by default).
            "socket.nagle.disable": "true",
        ]
        result.merge(properties) { _, passThrough in passThrough }
        return result
    }
}
