import Metrics

/// The processor's Prometheus series (names are part of the operations contract).
struct ProcessorMetrics: Sendable {
    let consumed = Counter(label: "odds_processor_consumed_total")
    let applied = Counter(label: "odds_processor_applied_total")
    let staleDropped = Counter(label: "odds_processor_stale_total")
    let collapsed = Counter(label: "odds_processor_collapsed_total")
    let redisRepaired = Counter(label: "odds_processor_redis_repaired_total")
    let deadLettered = Counter(label: "odds_dlq_total", dimensions: [("stage", "processor")])
    let batchSize = Recorder(label: "odds_processor_batch_size")
    let batchLatency = Timer(label: "odds_processor_batch_latency_seconds")
    let postgresWriteLatency = Timer(label: "odds_processor_store_write_latency_seconds", dimensions: [("store", "postgres")])
    let redisWriteLatency = Timer(label: "odds_processor_store_write_latency_seconds", dimensions: [("store", "redis")])
    let endToEndLag = Timer(label: "odds_processor_e2e_lag_seconds")
    let dependencyFailures = Counter(label: "odds_processor_errors_total", dimensions: [("stage", "store")])
    let commitFailures = Counter(label: "odds_processor_errors_total", dimensions: [("stage", "commit")])

    func invalid(_ code: ValidationCodeLabel) -> Counter {
        Counter(label: "odds_invalid_total", dimensions: [("stage", "processor"), ("reason", code.rawValue)])
    }

    func lag(partition: Int32) -> Gauge {
        Gauge(label: "odds_processor_consumer_lag", dimensions: [("partition", String(partition))])
    }
}

typealias ValidationCodeLabel = Contracts.ValidationCode

import Contracts
