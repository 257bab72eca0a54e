import Contracts
import Metrics

/// The supplier's Prometheus metrics (prefix `odds_supplier_`). Counters per frame kind are made
/// once, so the hot path never looks a label up.
struct SupplierMetrics: Sendable {
    let connections = Gauge(label: "odds_supplier_connections")
    /// Frames handed to the client buffers (and the journal), by kind.
    let emitted: [FrameKind: Counter]
    /// Frames written to a client socket, by kind (one frame to two clients counts twice).
    let sent: [FrameKind: Counter]
    let framesUnsent = Counter(label: "odds_supplier_frames_unsent_total")
    let slowClientDisconnects = Counter(label: "odds_supplier_slow_client_disconnects_total")
    let forcedDisconnects = Counter(label: "odds_supplier_forced_disconnects_total")
    let confirmations: [String: Counter]
    /// Connects by what they got: replay, snapshot or live.
    let recoveries: [FeedRecovery: Counter]
    /// Snapshots sent, by reason.
    let snapshots: [SnapshotReason: Counter]
    let framesReplayed = Counter(label: "odds_supplier_frames_replayed_total")
    /// Alive frames written to clients (one per client) while the feed was quiet.
    let aliveFrames = Counter(label: "odds_supplier_alive_frames_total")
    /// Stream frames in the replay log, and the seq of the oldest one (0 when empty).
    let replayLogFrames = Gauge(label: "odds_supplier_replay_log_frames")
    let replayLogFirstSeq = Gauge(label: "odds_supplier_replay_log_first_seq")
    let snapshotFrames = Counter(label: "odds_supplier_snapshot_frames_total")

    init() {
        var emitted: [FrameKind: Counter] = [:]
        var sent: [FrameKind: Counter] = [:]
        for kind in FrameKind.allCases {
            emitted[kind] = Counter(label: "odds_supplier_frames_emitted_total", dimensions: [("kind", kind.rawValue)])
            sent[kind] = Counter(label: "odds_supplier_frames_sent_total", dimensions: [("kind", kind.rawValue)])
        }
        self.emitted = emitted
        self.sent = sent
        var recoveries: [FeedRecovery: Counter] = [:]
        for recovery in FeedRecovery.allCases {
            recoveries[recovery] = Counter(label: "odds_supplier_feed_starts_total", dimensions: [("recovery", recovery.rawValue)])
        }
        self.recoveries = recoveries
        var snapshots: [SnapshotReason: Counter] = [:]
        for reason in SnapshotReason.allCases {
            snapshots[reason] = Counter(label: "odds_supplier_snapshots_total", dimensions: [("reason", reason.rawValue)])
        }
        self.snapshots = snapshots
        confirmations = [
            "confirmed": Counter(label: "odds_supplier_confirmations_total", dimensions: [("result", "confirmed")]),
            "rejected": Counter(label: "odds_supplier_confirmations_total", dimensions: [("result", "rejected")]),
        ]
    }

    func recordEmitted(_ frames: [EmittedFrame]) {
        record(frames.map(\.kind), into: emitted)
    }

    func recordSent(_ frames: [QueuedFrame]) {
        record(frames.compactMap(\.kind), into: sent)
    }

    func record(_ recovery: FeedHub.Recovery, markets: Int) {
        recoveries[recovery.hello.recovery]?.increment()
        if let reason = recovery.hello.reason {
            snapshots[reason]?.increment()
            snapshotFrames.increment(by: Int64(markets))
        }
        if recovery.replayed > 0 { framesReplayed.increment(by: Int64(recovery.replayed)) }
    }

    private func record(_ kinds: [FrameKind], into counters: [FrameKind: Counter]) {
        var counts: [FrameKind: Int64] = [:]
        for kind in kinds { counts[kind, default: 0] += 1 }
        for (kind, count) in counts { counters[kind]?.increment(by: count) }
    }
}
