/// Consumer group settings. Typed fields cover what this project tunes; `properties` passes any
/// other librdkafka property through (and wins over the typed fields).
public struct KafkaConsumerConfiguration: Sendable {
    public enum OffsetReset: String, Sendable {
        case earliest, latest
        case error
    }

    public enum RebalanceProtocol: Sendable {
        /// `range,roundrobin`: every rebalance revokes everything, then assigns anew.
        case eager
        /// `cooperative-sticky`: only partitions that move are revoked.
        case cooperativeSticky
    }

    /// `bootstrap.servers`.
    public var bootstrapServers: String
    /// `group.id`.
    public var groupID: String
    /// `client.id`.
    public var clientID: String = "odds-pipeline"
    /// `auto.offset.reset`: where a partition without a committed offset starts.
    public var autoOffsetReset: OffsetReset = .earliest
    /// `session.timeout.ms`: a member silent this long is removed from the group.
    /// (The dev broker makes the group wait up to this long after a member dies: keep it short there.)
    public var sessionTimeout: Duration = .seconds(10)
    /// `heartbeat.interval.ms`.
    public var heartbeatInterval: Duration = .seconds(3)
    /// `max.poll.interval.ms`: the member leaves the group if `poll` is not called this often.
    public var maxPollInterval: Duration = .seconds(300)
    /// `fetch.wait.max.ms`: how long the broker holds a fetch for `fetch.min.bytes`.
    public var fetchMaxWait: Duration = .milliseconds(100)
    /// `fetch.min.bytes`.
    public var fetchMinBytes: Int = 1
    /// `max.partition.fetch.bytes`.
    public var maxPartitionFetchBytes: Int = 1_048_576
    /// `fetch.max.bytes`.
    public var fetchMaxBytes: Int = 52_428_800
    /// `queued.min.messages`: librdkafka prefetches until this many messages per partition are local.
    public var queuedMinMessages: Int = 100_000
    /// `queued.max.messages.kbytes`: upper bound of the local prefetch queue.
    public var queuedMaxKilobytes: Int = 65_536
    public var rebalanceProtocol: RebalanceProtocol = .eager
    /// nil: offsets are committed only by `commit`/`commitAsync`. Set: offsets handed to
    /// `storeOffsets` are committed by librdkafka this often (only those that moved), and when
    /// partitions are revoked or the consumer closes (`enable.auto.commit` with
    /// `enable.auto.offset.store=false`: only what the application stored, never what it was
    /// merely handed). A commit per batch costs a request and two thread wake-ups per batch.
    public var autoCommitInterval: Duration?
    /// Any other librdkafka property.
    public var properties: [String: String] = [:]

    public init(bootstrapServers: String, groupID: String) {
        self.bootstrapServers = bootstrapServers
        self.groupID = groupID
    }

    /// The complete librdkafka property set. Offsets are only ever committed explicitly, or
    /// stored explicitly and committed by librdkafka (`autoCommitInterval`).
    public var librdkafkaProperties: [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers,
            "group.id": groupID,
            "client.id": clientID,
            "enable.auto.commit": autoCommitInterval == nil ? "false" : "true",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": autoOffsetReset.rawValue,
            "session.timeout.ms": "\(sessionTimeout.kafkaMilliseconds)",
            "heartbeat.interval.ms": "\(heartbeatInterval.kafkaMilliseconds)",
            "max.poll.interval.ms": "\(maxPollInterval.kafkaMilliseconds)",
            "fetch.wait.max.ms": "\(fetchMaxWait.kafkaMilliseconds)",
            "fetch.min.bytes": "\(fetchMinBytes)",
            "max.partition.fetch.bytes": "\(maxPartitionFetchBytes)",
            "fetch.max.bytes": "\(fetchMaxBytes)",
            "queued.min.messages": "\(queuedMinMessages)",
            "queued.max.messages.kbytes": "\(queuedMaxKilobytes)",
            "partition.assignment.strategy": rebalanceProtocol == .eager ? "range,roundrobin" : "cooperative-sticky",
            "enable.partition.eof": "false",
            // Requests go out when written: Nagle's algorithm would hold a small request while
            // the previous one is unacknowledged (librdkafka leaves it on by default).
            "socket.nagle.disable": "true",
        ]
        if let autoCommitInterval { result["auto.commit.interval.ms"] = "\(autoCommitInterval.kafkaMilliseconds)" }
        result.merge(properties) { _, passThrough in passThrough }
        return result
    }
}
