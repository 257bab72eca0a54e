import Contracts
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// Reports the feed's health on Kafka (`odds_feed_status`, key = feed id): a heartbeat every
/// `interval`, and one at once when the state changes. Downstream, a missing heartbeat means a
/// dead ingest (or a cut path to Kafka), so the heartbeats keep going whatever the feed does.
///
/// At most one heartbeat is in flight: when Kafka does not answer, the next ones are skipped,
/// not queued (the newest state is what matters). While recovering, the claim is checked every
/// `recoveryCheck` so that `up` goes out as soon as Kafka holds what the supplier had.
struct FeedHeartbeats: Service {
    let feed: String
    let instance: String
    let topic: String
    let producer: KafkaProducer
    let board: FeedHealthBoard
    let progress: FeedProgress
    let lastRead: LastRead
    let metrics: IngestMetrics
    let logger: Logger
    var interval: Duration = .seconds(1)
    var recoveryCheck: Duration = .milliseconds(50)

    func run() async throws {
        let inFlight = InFlightFlag()
        var reported: (state: FeedHeartbeat.State, reason: String?)?
        do {
            var nextBeat = ContinuousClock.now
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                board.update { $0.acknowledged(through: progress.claim, now: .now()) }
                let health = board.current
                let report = health.report
                let changed = reported.map { $0.state != report.state || $0.reason != report.reason } ?? true
                if changed || ContinuousClock.now >= nextBeat {
                    if changed {
                        logger.notice("feed state", metadata: [
                            "state": "\(report.state.rawValue)", "reason": "\(report.reason ?? "")", "since": "\(health.since.rfc3339)",
                        ])
                        metrics.record(feedState: report.state)
                    }
                    reported = report
                    nextBeat = ContinuousClock.now + interval
                    let heartbeat = FeedHeartbeat(
                        feed: feed, state: report.state, reason: report.reason, since: health.since, sentAt: .now(),
                        ingest: instance, position: lastRead.value?.description)
                    if inFlight.take() {
                        // Not awaited here: while Kafka does not answer, a send waits for its
                        // delivery report, and a shutdown must not wait for it (the producer's
                        // shutdown fails it).
                        Task { await send(heartbeat, inFlight: inFlight) }
                    } else {
                        metrics.heartbeatsSkipped.increment()
                    }
                }
                // Woken by a change, the next beat, or (recovering) the next claim check.
                var wake = nextBeat
                if case .recovering = health.link { wake = min(wake, ContinuousClock.now + recoveryCheck) }
                await board.waitForChange(until: wake)
            }
        }
    }

    private func send(_ heartbeat: FeedHeartbeat, inFlight: InFlightFlag) async {
        defer { inFlight.release() }
        // The claim rides along, so a restarted ingest finds it even after a quiet feed (the odds
        // topics only carry the claim known when their last message was written).
        let headers = progress.claim.map { [KafkaHeader(key: FeedHeaders.resumeAfter, value: $0.description)] } ?? []
        let message = KafkaProducerMessage(topic: topic, key: Array(feed.utf8), value: Array(heartbeat.jsonData()), headers: headers)
        do {
            _ = try await producer.send(message)
            metrics.heartbeatsSent.increment()
        } catch {
            metrics.heartbeatFailures.increment()
            logger.warning("feed heartbeat not delivered", metadata: ["error": "\(error)", "state": "\(heartbeat.state.rawValue)"])
        }
    }
}

/// One heartbeat in flight at a time.
private final class InFlightFlag: Sendable {
    private let busy = Atomic<Bool>(false)
    /// True when it was free (and is now taken).
    func take() -> Bool { busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged }
    func release() { busy.store(false, ordering: .releasing) }
}
