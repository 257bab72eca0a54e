import Contracts
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// Whether the supplier connection is up, for `/readyz` and the metrics.
final class FeedStatus: Sendable {
    private let connected = Atomic<Bool>(false)
    var isConnected: Bool { connected.load(ordering: .acquiring) }
    func set(connected value: Bool) { connected.store(value, ordering: .releasing) }
}

/// Frames read on one connection.
final class FrameCount: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// Which connection may hand frames on: the newest one only.
///
/// A connection abandoned at a deadline can still come to life: the client library does not
/// give up an upgrade it is waiting for when its task is cancelled, so a frozen supplier that
/// thaws answers every connection its kernel queued, each with a replay. Frames read on such a
/// connection would reach Kafka a second time through the next one. So each connection gets a
/// turn, and the reader ends it before it opens the next connection: nothing is handled after
/// the end, and a frame being handled at that moment finishes first, so the next connection's
/// resume position counts it.
final class ConnectionTurn: Sendable {
    private struct State {
        var open = true
        var handling = false
        var ended: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Runs `body` if the turn has not ended, and says whether it did.
    func whileOpen(_ body: () async throws -> Void) async rethrows -> Bool {
        let open = state.withLock { state in
            guard state.open else { return false }
            state.handling = true
            return true
        }
        guard open else { return false }
        defer {
            let waiter = state.withLock { state in
                state.handling = false
                defer { state.ended = nil }
                return state.ended
            }
            waiter?.resume()
        }
        try await body()
        return true
    }

    /// Ends the turn; returns once no `whileOpen` body is running.
    func end() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state in
                state.open = false
                guard state.handling else { return true }
                state.ended = continuation
                return false
            }
            if idle { continuation.resume() }
        }
    }
}

/// The stream position of the last frame this process read (in memory, across reconnects).
final class LastRead: Sendable {
    private let position = Mutex<FeedPosition?>(nil)
    var value: FeedPosition? { position.withLock { $0 } }
    func set(_ value: FeedPosition) { position.withLock { $0 = value } }
}

/// The supplier WebSocket client (odds-feed/2). Reads one frame at a time: check its place in
/// the stream, validate, route, hand to the publisher, and only then read the next — so when the
/// publisher's window is full the socket is not read and TCP pushes back on the supplier. Every
/// frame read is published or dead-lettered.
///
/// Resuming: before its first connection ingest reads the newest messages of its topics and
/// asks the supplier to resume after the greatest `feed-resume-after` claim found there (or for
/// a snapshot when there is none), so a killed ingest loses nothing. On a reconnect within the
/// same process it resumes after the last frame it read: what it read and Kafka has not
/// acknowledged yet is still held (and retried) by the publisher. Every connection is retried
/// with exponential backoff and jitter, capped.
///
/// On graceful shutdown the WebSocket layer sends a close frame; the frames the supplier sent
/// before its close reply are still read and published, then the loop ends.
struct FeedReader: Service {
    let url: String
    let router: FrameRouter
    let publisher: KafkaPublisher
    let progress: FeedProgress
    let status: FeedStatus
    /// What the heartbeats report (moved here: connected, recovering, silent, disconnected).
    let board: FeedHealthBoard
    let lastRead: LastRead
    let metrics: IngestMetrics
    let logger: Logger
    let minimumBackoff: Duration
    let maximumBackoff: Duration
    /// Where the feed's claims are read from at start (`brokers`, the odds and dead-letter topics).
    let kafkaBrokers: String
    let resumeTopics: [String]
    /// The heartbeat topic, whose messages of this feed (key = feed id) carry claims too.
    var heartbeatTopic: String?
    var feedID = ""
    /// Newest messages read per partition to find the greatest claim. The claim grows with every
    /// message, so the last one of each partition would do; a few more cover retried deliveries
    /// that landed after newer ones.
    var resumeTailSize = 64
    /// Largest frame accepted off the socket; larger ones (already far over the contract's
    /// 16 KiB, which are dead-lettered as `oversize`) end the connection.
    var maxFrameSize = 256 * 1024
    /// How long the WebSocket upgrade may take. The client library waits forever for the
    /// answer of a server that closed the connection mid-handshake (a supplier shutting down);
    /// past this the attempt is abandoned and ingest reconnects.
    var handshakeTimeout: Duration = .seconds(10)
    /// A connection that delivers nothing (not even the supplier's alive frames) for this long
    /// counts as silent: it is closed and ingest reconnects, resuming after the last frame read.
    var silenceLimit: Duration = .milliseconds(2_500)

    func run() async throws {
        guard let kafkaClaim = await claimInKafka() else {
            logger.info("feed reader stopped before it connected")
            return
        }
        var backoff = ReconnectBackoff(minimum: minimumBackoff, maximum: maximumBackoff)
        board.update { $0.disconnected(now: .now()) }
        var attempt = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            attempt += 1
            metrics.connectAttempts.increment()
            let (start, source): (FeedStart, String) = if let position = lastRead.value {
                (.after(position), "memory")
            } else if let claim = kafkaClaim {
                (.after(claim), "kafka")
            } else {
                (.snapshot, "none")
            }
            metrics.resumeSources[source]?.increment()
            let connectURL = url + (url.contains("?") ? "&" : "?") + start.query
            logger.info("connecting to supplier", metadata: [
                "url": "\(connectURL)", "attempt": "\(attempt)", "start": "\(start)", "position_from": "\(source)",
            ])
            let framesRead = FrameCount()
            let activity = ActivityWatch("the supplier (no frame, not even alive)", limit: silenceLimit)
            let turn = ConnectionTurn()
            do {
                let closeFrame = try await Deadline.untilStarted(
                    "the supplier's WebSocket handshake", timeout: handshakeTimeout, idle: activity
                ) { [maxFrameSize, status, metrics, logger, lastRead] handshakeDone in
                    try await FeedWebSocketClient.connect(
                        url: connectURL, maxFrameSize: maxFrameSize, logger: Logger(label: "ingest.websocket")
                    ) { inbound, _, _ in
                        let current = await turn.whileOpen {
                            handshakeDone()
                            status.set(connected: true)
                            metrics.supplierConnected.record(1)
                            logger.info("connected to supplier", metadata: ["url": "\(connectURL)"])
                        }
                        guard current else {
                            logger.notice("an abandoned connection to the supplier was answered late; closed unread", metadata: ["url": "\(connectURL)"])
                            return
                        }
                        var session = FeedSession(requested: start)
                        var assembler = FeedMessageAssembler(maxSize: maxFrameSize)
                        for try await frame in inbound {
                            activity.touch()
                            guard let bytes = try assembler.add(frame) else { continue }
                            framesRead.increment()
                            // Waiting for Kafka (a full window) is not the supplier being silent.
                            let handled = try await activity.busy {
                                try await turn.whileOpen { try await handle(bytes, session: &session, lastRead: lastRead) }
                            }
                            guard handled else { return }  // abandoned: the next connection reads this frame again
                        }
                    }
                }
                logger.notice("supplier closed the feed", metadata: [
                    "frames_read": "\(framesRead.value)",
                    "close_code": "\(closeFrame.map { "\($0.closeCode)" } ?? "none")",
                    "reason": "\(closeFrame?.reason ?? "")",
                    "last_position": "\(lastRead.value.map { "\($0)" } ?? "none")",
                ])
            } catch let unusable as KafkaPublisher.Unusable {
                // Reading on would lose every frame read: stop, so the process exits non-zero and
                // its supervisor restarts it with a fresh producer.
                logger.critical("stopping: frames can no longer be published", metadata: ["error": "\(unusable)"])
                throw unusable
            } catch let silence as Deadline.Idle {
                metrics.silences.increment()
                // Silent since the last frame, not since the limit ran out.
                let quiet = ContinuousClock.now - activity.lastTouch
                let lastFrame = Timestamp(millisecondsSinceEpoch: Timestamp.now().millisecondsSinceEpoch - Int64(quiet / .milliseconds(1)))
                board.update { $0.silent(now: lastFrame) }
                logger.error("the supplier went silent; reconnecting to resume after the last frame read", metadata: [
                    "error": "\(silence)", "last_position": "\(lastRead.value.map { "\($0)" } ?? "none")",
                ])
            } catch where error is FeedSession.Violation || error is FeedMessageAssembler.Failure {
                metrics.protocolErrors.increment()
                logger.error("supplier broke the feed protocol; reconnecting to resume after the last frame read", metadata: [
                    "error": "\(error)", "last_position": "\(lastRead.value.map { "\($0)" } ?? "none")",
                ])
            } catch {
                logger.warning("supplier connection failed", metadata: [
                    "url": "\(url)", "attempt": "\(attempt)", "frames_read": "\(framesRead.value)",
                    "error": "\(error)",
                ])
            }
            // Before anything else can connect, this connection stops handing frames on.
            await turn.end()
            status.set(connected: false)
            metrics.supplierConnected.record(0)
            board.update { $0.disconnected(now: .now()) }
            // A connection that delivered frames worked: the next failure starts the backoff anew.
            if framesRead.value > 0 { backoff.reset() }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { break }
            let delay = backoff.nextDelay()
            logger.info("reconnecting to supplier after backoff", metadata: [
                "delay_ms": "\(Int(delay / .milliseconds(1)))", "next_attempt": "\(attempt + 1)",
            ])
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
        }
        logger.info("feed reader stopped")
    }

    /// The greatest claim in the newest messages of the topics, retried until Kafka answers;
    /// `.some(nil)` when Kafka holds none, nil when shutdown came first.
    private func claimInKafka() async -> FeedPosition?? {
        var backoff = ReconnectBackoff(minimum: minimumBackoff, maximum: maximumBackoff)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let messages = try await KafkaTail.lastMessages(
                    brokers: kafkaBrokers, topics: resumeTopics + (heartbeatTopic.map { [$0] } ?? []), perPartition: resumeTailSize,
                    timeout: .seconds(10), logger: Logger(label: "ingest.kafka.resume"))
                // Heartbeats of other feeds carry their claims, not ours.
                let ours = messages.filter { $0.topic != heartbeatTopic || $0.key == Array(feedID.utf8) }
                let claim = ResumePoint.greatestClaim(in: ours)
                progress.reset(claim: claim)
                if let claim {
                    metrics.claimSeq.record(Int(claim.seq))
                    logger.notice("resuming the feed after the position Kafka is known to hold", metadata: [
                        "after": "\(claim)", "messages_inspected": "\(messages.count)", "topics": "\(resumeTopics.joined(separator: ","))",
                    ])
                } else {
                    logger.notice("no feed position in Kafka (a first start, or a feed without positions); asking for a snapshot", metadata: [
                        "messages_inspected": "\(messages.count)",
                    ])
                }
                return .some(claim)
            } catch {
                let delay = backoff.nextDelay()
                logger.warning("cannot read the feed position from Kafka yet; the supplier is not read until it can be", metadata: [
                    "error": "\(error)", "retry_ms": "\(Int(delay / .milliseconds(1)))",
                ])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
            }
        }
        return nil
    }

    /// One frame: its place in the stream, then validate, route, publish (waiting while the
    /// window is full).
    private func handle(_ bytes: [UInt8], session: inout FeedSession, lastRead: LastRead) async throws {
        let frame: FeedFrame
        do {
            frame = try FeedFrame.parse(bytes)
        } catch {
            metrics.received.increment()
            metrics.unreadable.increment()
            session.noteUnreadable()
            logger.warning("unreadable feed frame sent to the dead-letter topic", metadata: [
                "error": "\(error)", "frame": "\(String(decoding: bytes.prefix(200), as: UTF8.self))",
            ])
            try await publisher.publish(router.routeUnreadable(bytes, error: error), ticket: progress.add(claim: nil))
            return
        }
        switch try session.accept(frame) {
        case .hello(let hello):
            board.update { $0.connected(at: hello.position, now: .now()) }
            metrics.feedStarts[hello.recovery]?.increment()
            if let reason = hello.reason { metrics.snapshots[reason]?.increment() }
            logger.notice("supplier answered", metadata: [
                "recovery": "\(hello.recovery.rawValue)", "reason": "\(hello.reason?.rawValue ?? "")",
                "asked_after": "\(hello.after.map { "\($0)" } ?? "")", "supplier_position": "\(hello.position)",
                "replay_log_first_seq": "\(hello.replayLogFirstSeq.map { "\($0)" } ?? "")",
                "frames_to_replay": "\(hello.recovery == .replay ? "\(hello.position.seq - (hello.after?.seq ?? hello.position.seq))" : "0")",
            ])
        case .snapshotStart(let position, let markets):
            logger.info("snapshot started", metadata: ["position": "\(position)", "markets": "\(markets)"])
        case .stream(let position, let payload, let replayed):
            if replayed { metrics.framesReplayed.increment() }
            var headers = [
                KafkaHeader(key: FeedHeaders.epoch, value: String(position.epoch)),
                KafkaHeader(key: FeedHeaders.seq, value: String(position.seq)),
            ]
            try await publish(payload, headers: &headers, claim: position)
            lastRead.set(position)
            metrics.feedSeq.record(Int(position.seq))
        case .snapshotMarket(let position, let payload):
            metrics.snapshotFrames.increment()
            var headers = [
                KafkaHeader(key: FeedHeaders.epoch, value: String(position.epoch)),
                KafkaHeader(key: FeedHeaders.snapshot, value: String(position.seq)),
            ]
            try await publish(payload, headers: &headers, claim: nil)
        case .alive:
            break
        case .snapshotComplete(let position):
            // No message of its own: done once every snapshot frame before it is acknowledged.
            _ = progress.add(claim: position, done: true)
            lastRead.set(position)
            metrics.feedSeq.record(Int(position.seq))
            logger.notice("snapshot complete; live frames follow", metadata: ["position": "\(position)"])
        }
    }

    /// Validates and publishes one OddsUpdate payload with its feed headers and the current claim.
    private func publish(_ payload: [UInt8], headers: inout [KafkaHeader], claim: FeedPosition?) async throws {
        metrics.received.increment()
        if let known = progress.claim {
            headers.append(KafkaHeader(key: FeedHeaders.resumeAfter, value: known.description))
        }
        let routed = router.route(payload, feedHeaders: headers)
        switch routed {
        case .publish(_, let update):
            let lag = Date().timeIntervalSince1970 - Double(update.updatedAt.millisecondsSinceEpoch) / 1000
            metrics.feedLag.record(lag)
        case .deadLetter(_, let reason):
            metrics.invalid[reason.primaryCode]?.increment()
            logger.warning("invalid frame sent to the dead-letter topic", metadata: [
                "reason": "\(reason.primaryCode.rawValue)", "error": "\(reason)",
                "frame": "\(String(decoding: payload.prefix(200), as: UTF8.self))",
            ])
        case .unreadable:
            break
        }
        // If this throws (shutdown, or a producer that can no longer deliver: both end the
        // reader), the entry stays not done and the claim stops before it, as it must: the frame
        // is not in Kafka.
        try await publisher.publish(routed, ticket: progress.add(claim: claim))
    }
}
