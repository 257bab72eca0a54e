import Contracts
import Foundation
import Metrics
import Synchronization

/// odds-service metrics: exported through swift-metrics (Prometheus on the metrics port) and
/// mirrored in per-instance atomics so tests can read them without parsing `/metrics`.
final class ServiceMetrics: Sendable {
    let connections = Atomic<Int>(0)
    let subscriptions = Atomic<Int>(0)
    let conflated = Atomic<Int>(0)
    let staleDropped = Atomic<Int>(0)
    let slowCloses = Atomic<Int>(0)
    let resyncs = Atomic<Int>(0)
    let inboundRejected = Atomic<Int>(0)
    let broadcastsReceived = Atomic<Int>(0)
    let framesSent = Atomic<Int>(0)
    let feedStatusesInvalid = Atomic<Int>(0)
    let statusFramesQueued = Atomic<Int>(0)
    let mirrorHits = Atomic<Int>(0)
    let answeredOnEventLoop = Atomic<Int>(0)
    let mirrorMisses = Atomic<Int>(0)

    private let connectionsGauge = Gauge(label: "odds_ws_connections")
    private let subscriptionsGauge = Gauge(label: "odds_ws_subscriptions")
    private let framesSentCounters: [PendingFrame.Kind: Counter]
    private let conflatedCounter = Counter(label: "odds_ws_conflated_total")
    private let staleCounter = Counter(label: "odds_ws_stale_dropped_total")
    private let slowCloseCounter = Counter(label: "odds_ws_slow_closes_total")
    private let resyncCounter = Counter(label: "odds_ws_resyncs_total")
    private let broadcastCounter = Counter(label: "odds_service_broadcasts_received_total")
    private let undecodableCounter = Counter(label: "odds_service_broadcasts_invalid_total")
    private let e2eLatency = Timer(label: "odds_e2e_latency_seconds")
    private let suspensionPushLatency = Timer(label: "odds_ws_suspension_push_latency_seconds")
    private let feedStatusInvalidCounter = Counter(label: "odds_service_feed_status_invalid_total")
    private let feedGauges: Mutex<[String: Gauge]> = Mutex([:])
    private let feedChangeCounters: Mutex<[String: Counter]> = Mutex([:])
    private let rejectedCounters: Mutex<[String: Counter]> = Mutex([:])
    private let closeCounters: Mutex<[String: Counter]> = Mutex([:])
    private let fallbackCounters: Mutex<[String: Counter]> = Mutex([:])
    private let eventLoopAnswerCounter = Counter(label: "odds_rest_answered_on_event_loop_total")
    private let mirrorHitCounter = Counter(label: "odds_service_mirror_reads_total", dimensions: [("result", "hit")])
    private let mirrorMissCounter = Counter(label: "odds_service_mirror_reads_total", dimensions: [("result", "miss")])
    private let restTimers: Mutex<[String: Timer]> = Mutex([:])

    init() {
        var counters: [PendingFrame.Kind: Counter] = [:]
        for kind in PendingFrame.Kind.allCases {
            counters[kind] = Counter(label: "odds_ws_frames_sent_total", dimensions: [("type", kind.rawValue)])
        }
        framesSentCounters = counters
        connectionsGauge.record(0)
        subscriptionsGauge.record(0)
    }

    func connectionOpened() { connectionsGauge.record(connections.wrappingAdd(1, ordering: .relaxed).newValue) }
    func connectionClosed() { connectionsGauge.record(connections.wrappingSubtract(1, ordering: .relaxed).newValue) }

    func subscriptionsChanged(by delta: Int) {
        guard delta != 0 else { return }
        subscriptionsGauge.record(subscriptions.wrappingAdd(delta, ordering: .relaxed).newValue)
    }

    /// A batch of frames written to one socket.
    func framesSent(_ frames: [PendingFrame]) {
        var runKind = frames.first?.kind
        var run = 0
        for frame in frames {
            if frame.kind != runKind {
                if let runKind { framesSent(runKind, count: run) }
                runKind = frame.kind
                run = 0
            }
            run += 1
        }
        if let runKind { framesSent(runKind, count: run) }
    }

    /// `count` frames of one kind written (to one or many sockets).
    func framesSent(_ kind: PendingFrame.Kind, count: Int) {
        guard count > 0 else { return }
        framesSent.wrappingAdd(count, ordering: .relaxed)
        framesSentCounters[kind]?.increment(by: count)
    }

    /// updated_at → an update handed to the writers of one event loop's subscribers. Recorded
    /// once per update and event loop rather than per frame: at 200,000 frames/s a histogram
    /// observation per frame would cost more than the writes it measures.
    func fannedOut(_ update: OddsUpdate, nowMs: Int64) {
        e2eLatency.recordMilliseconds(max(0, nowMs - update.updatedAt.millisecondsSinceEpoch))
    }

    func conflated(_ count: Int) {
        guard count > 0 else { return }
        conflated.wrappingAdd(count, ordering: .relaxed)
        conflatedCounter.increment(by: count)
    }

    func staleDropped(_ count: Int = 1) {
        staleDropped.wrappingAdd(count, ordering: .relaxed)
        staleCounter.increment(by: count)
    }

    func slowClose() {
        slowCloses.wrappingAdd(1, ordering: .relaxed)
        slowCloseCounter.increment()
    }

    func resync() {
        resyncs.wrappingAdd(1, ordering: .relaxed)
        resyncCounter.increment()
    }

    func broadcastReceived() {
        broadcastsReceived.wrappingAdd(1, ordering: .relaxed)
        broadcastCounter.increment()
    }

    func broadcastInvalid() { undecodableCounter.increment() }

    /// A feed status message or hash value that is not a FeedStatus (or on no known channel).
    func feedStatusInvalid() {
        feedStatusesInvalid.wrappingAdd(1, ordering: .relaxed)
        feedStatusInvalidCounter.increment()
    }

    /// A feed's overlay stored: gauge `odds_feed_suspended{feed}` (1 suspended, 0 open), and
    /// `odds_service_feed_status_changes_total{feed,state}` when its state changed.
    func feedStatus(_ status: FeedStatus, stateChanged: Bool) {
        let gauge = feedGauges.withLock { gauges in
            if let gauge = gauges[status.feed] { return gauge }
            let gauge = Gauge(label: "odds_feed_suspended", dimensions: [("feed", status.feed)])
            gauges[status.feed] = gauge
            return gauge
        }
        gauge.record(status.isSuspended ? 1 : 0)
        guard stateChanged else { return }
        let key = "\(status.feed)/\(status.state.rawValue)"
        let counter = feedChangeCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "odds_service_feed_status_changes_total",
                                  dimensions: [("feed", status.feed), ("state", status.state.rawValue)])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// A suspension's status frames were handed to the connections: now - the overlay's since.
    func suspensionPushed(since: Timestamp, nowMs: Int64) {
        suspensionPushLatency.recordMilliseconds(max(0, nowMs - since.millisecondsSinceEpoch))
    }

    func statusFramesQueued(_ count: Int) {
        guard count > 0 else { return }
        statusFramesQueued.wrappingAdd(count, ordering: .relaxed)
    }

    /// An inbound WebSocket message refused with an error frame (reason = error code).
    func inboundRejected(_ reason: String) {
        inboundRejected.wrappingAdd(1, ordering: .relaxed)
        let counter = rejectedCounters.withLock { counters in
            if let counter = counters[reason] { return counter }
            let counter = Counter(label: "odds_ws_inbound_rejected_total", dimensions: [("reason", reason)])
            counters[reason] = counter
            return counter
        }
        counter.increment()
    }

    /// A connection closed by the server (reason = close code name).
    func serverClose(_ reason: String) {
        let counter = closeCounters.withLock { counters in
            if let counter = counters[reason] { return counter }
            let counter = Counter(label: "odds_ws_server_closes_total", dimensions: [("reason", reason)])
            counters[reason] = counter
            return counter
        }
        counter.increment()
    }

    /// A read answered from PostgreSQL (reason: redis_error, redis_miss).
    /// Current-odds reads answered by the in-memory mirror (hit) or read from Redis (miss).
    func mirrorRead(hit: Bool, count: Int = 1) {
        guard count > 0 else { return }
        if hit {
            mirrorHits.wrappingAdd(count, ordering: .relaxed)
            mirrorHitCounter.increment(by: count)
        } else {
            mirrorMisses.wrappingAdd(count, ordering: .relaxed)
            mirrorMissCounter.increment(by: count)
        }
    }

    /// A current-odds request answered by `HotReadHandler` (mirror hit, no router).
    func answeredOnEventLoop(_ count: Int = 1) {
        answeredOnEventLoop.wrappingAdd(count, ordering: .relaxed)
        eventLoopAnswerCounter.increment(by: count)
    }

    func fallback(_ reason: String) {
        let counter = fallbackCounters.withLock { counters in
            if let counter = counters[reason] { return counter }
            let counter = Counter(label: "odds_service_postgres_fallbacks_total", dimensions: [("reason", reason)])
            counters[reason] = counter
            return counter
        }
        counter.increment()
    }

    func restTimer(route: String) -> Timer {
        restTimers.withLock { timers in
            if let timer = timers[route] { return timer }
            let timer = Timer(label: "odds_service_rest_latency_seconds", dimensions: [("route", route)])
            timers[route] = timer
            return timer
        }
    }
}
