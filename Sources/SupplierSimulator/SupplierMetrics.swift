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

    init() {
        var emitted: [FrameKind: Counter] = [:]
        var sent: [FrameKind: Counter] = [:]
        for kind in FrameKind.allCases {
            emitted[kind] = Counter(label: "odds_supplier_frames_emitted_total", dimensions: [("kind", kind.rawValue)])
            sent[kind] = Counter(label: "odds_supplier_frames_sent_total", dimensions: [("kind", kind.rawValue)])
        }
        self.emitted = emitted
        self.sent = sent
        confirmations = [
            "confirmed": Counter(label: "odds_supplier_confirmations_total", dimensions: [("result", "confirmed")]),
            "rejected": Counter(label: "odds_supplier_confirmations_total", dimensions: [("result", "rejected")]),
        ]
    }

    func recordEmitted(_ frames: [EmittedFrame]) {
        record(frames.map(\.kind), into: emitted)
    }

    func recordSent(_ frames: [QueuedFrame]) {
        record(frames.map(\.kind), into: sent)
    }

    private func record(_ kinds: [FrameKind], into counters: [FrameKind: Counter]) {
        var counts: [FrameKind: Int64] = [:]
        for kind in kinds { counts[kind, default: 0] += 1 }
        for (kind, count) in counts { counters[kind]?.increment(by: count) }
    }
}
