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
    /// Frames that were not odds-feed/2 frames at all, read / acknowledged on the DLQ.
    let unreadable = Counter(label: "odds_invalid_total", dimensions: [("reason", InvalidFeedFrame.code)])
    let unreadableDeadLettered = Counter(label: "odds_dlq_total", dimensions: [("stage", "ingest"), ("reason", InvalidFeedFrame.code)])
    /// Connections by what the supplier answered: replay, snapshot or live.
    let feedStarts: [FeedRecovery: Counter]
    /// Snapshots read, by the supplier's reason.
    let snapshots: [SnapshotReason: Counter]
    let framesReplayed = Counter(label: "odds_ingest_frames_replayed_total")
    let snapshotFrames = Counter(label: "odds_ingest_snapshot_frames_total")
    /// Connections ended because the supplier broke the feed protocol (out of sequence, ...).
    let protocolErrors = Counter(label: "odds_ingest_feed_protocol_errors_total")
    /// Where each connection asked to start: `kafka` (a claim found at start), `memory` (after
    /// the last frame this process read), `none` (nothing known: snapshot).
    let resumeSources: [String: Counter]
    /// Seq of the last stream frame read, and of the position Kafka is known to hold.
    let feedSeq = Gauge(label: "odds_ingest_feed_seq")
    let claimSeq = Gauge(label: "odds_ingest_kafka_complete_through_seq")
    /// Feed heartbeats delivered to / lost on the way to Kafka, and skipped because the previous
    /// one was not answered yet.
    let heartbeatsSent = Counter(label: "odds_ingest_heartbeats_total", dimensions: [("result", "sent")])
    let heartbeatFailures = Counter(label: "odds_ingest_heartbeats_total", dimensions: [("result", "failed")])
    let heartbeatsSkipped = Counter(label: "odds_ingest_heartbeats_total", dimensions: [("result", "skipped")])
    /// Connections ended because the supplier went silent (no frame, not even alive).
    let silences = Counter(label: "odds_ingest_feed_silences_total")
    /// 1 for the state ingest reports now (up, recovering, down), 0 for the others.
    let feedState: [FeedHeartbeat.State: Gauge]

    func record(feedState state: FeedHeartbeat.State) {
        for (candidate, gauge) in feedState { gauge.record(candidate == state ? 1 : 0) }
    }

    init() {
        var invalid: [ValidationCode: Counter] = [:]
        var deadLettered: [ValidationCode: Counter] = [:]
        for code in ValidationCode.allCases {
            invalid[code] = Counter(label: "odds_invalid_total", dimensions: [("reason", code.rawValue)])
            deadLettered[code] = Counter(label: "odds_dlq_total", dimensions: [("stage", "ingest"), ("reason", code.rawValue)])
        }
        self.invalid = invalid
        self.deadLettered = deadLettered
        var feedStarts: [FeedRecovery: Counter] = [:]
        for recovery in FeedRecovery.allCases {
            feedStarts[recovery] = Counter(label: "odds_ingest_feed_starts_total", dimensions: [("recovery", recovery.rawValue)])
        }
        self.feedStarts = feedStarts
        var snapshots: [SnapshotReason: Counter] = [:]
        for reason in SnapshotReason.allCases {
            snapshots[reason] = Counter(label: "odds_ingest_snapshots_total", dimensions: [("reason", reason.rawValue)])
        }
        self.snapshots = snapshots
        var resumeSources: [String: Counter] = [:]
        for source in ["kafka", "memory", "none"] {
            resumeSources[source] = Counter(label: "odds_ingest_resume_source_total", dimensions: [("source", source)])
        }
        self.resumeSources = resumeSources
        var feedState: [FeedHeartbeat.State: Gauge] = [:]
        for state in FeedHeartbeat.State.allCases {
            feedState[state] = Gauge(label: "odds_ingest_feed_state", dimensions: [("state", state.rawValue)])
        }
        self.feedState = feedState
    }
}
