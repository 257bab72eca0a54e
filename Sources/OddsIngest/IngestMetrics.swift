import Contracts
import Metrics

/// Ingest's Prometheus metrics. Labelled counters are made once per label value.
struct IngestMetrics: Sendable {
    let received = Counter(label: "odds_ingest_received_total")
    /// Valid updates acknowledged by Kafka on the odds topic.
    let published = Counter(label: "odds_ingest_published_total")
    let publishLatency = Metrics.Timer(label: "odds_ingest_publish_latency_seconds", preferredDisplayUnit: .seconds)
    /// now − updated_at of the latest valid frame.
    let feedLag = Gauge(label: "odds_ingest_feed_lag_seconds")
    let inFlight = Gauge(label: "odds_ingest_in_flight")
    let supplierConnected = Gauge(label: "odds_ingest_supplier_connected")
    let connectAttempts = Counter(label: "odds_ingest_connect_attempts_total")
    let deliveryFailures = Counter(label: "odds_ingest_delivery_failures_total")
    let invalid: [ValidationCode: Counter]
    let deadLettered: [ValidationCode: Counter]

    init() {
        var invalid: [ValidationCode: Counter] = [:]
        var deadLettered: [ValidationCode: Counter] = [:]
        for code in ValidationCode.allCases {
            invalid[code] = Counter(label: "odds_invalid_total", dimensions: [("reason", code.rawValue)])
            deadLettered[code] = Counter(label: "odds_dlq_total", dimensions: [("stage", "ingest"), ("reason", code.rawValue)])
        }
        self.invalid = invalid
        self.deadLettered = deadLettered
    }
}
