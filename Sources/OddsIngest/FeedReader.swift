import Contracts
import Foundation
import HummingbirdWSClient
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

/// The supplier WebSocket client. Reads one frame at a time: validate, route, hand to the
/// publisher, and only then read the next — so when the publisher's window is full the socket is
/// not read and TCP pushes back on the supplier. Every frame read is published or dead-lettered;
/// the supplier cannot replay, so after a disconnect ingest simply reconnects (exponential
/// backoff with jitter, capped) and never re-sends anything itself.
///
/// On graceful shutdown the WebSocket layer sends a close frame; the frames the supplier sent
/// before its close reply are still read and published, then the loop ends.
struct FeedReader: Service {
    let url: String
    let router: FrameRouter
    let publisher: KafkaPublisher
    let status: FeedStatus
    let metrics: IngestMetrics
    let logger: Logger
    let minimumBackoff: Duration
    let maximumBackoff: Duration
    /// Largest frame accepted off the socket; larger ones (already far over the contract's
    /// 16 KiB, which are dead-lettered as `oversize`) end the connection.
    var maxFrameSize = 256 * 1024
    /// How long the WebSocket upgrade may take. The client library waits forever for the
    /// answer of a server that closed the connection mid-handshake (a supplier shutting down);
    /// past this the attempt is abandoned and ingest reconnects.
    var handshakeTimeout: Duration = .seconds(10)

    func run() async throws {
        var backoff = ReconnectBackoff(minimum: minimumBackoff, maximum: maximumBackoff)
        var attempt = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            attempt += 1
            metrics.connectAttempts.increment()
            logger.info("connecting to supplier", metadata: ["url": "\(url)", "attempt": "\(attempt)"])
            let framesRead = FrameCount()
            do {
                let closeFrame = try await Deadline.untilStarted(
                    "the supplier's WebSocket handshake", timeout: handshakeTimeout
                ) { [url, maxFrameSize, status, metrics, logger] handshakeDone in
                    try await WebSocketClient.connect(
                        url: url,
                        configuration: .init(maxFrameSize: maxFrameSize),
                        logger: Logger(label: "ingest.websocket")
                    ) { inbound, _, _ in
                        handshakeDone()
                        status.set(connected: true)
                        metrics.supplierConnected.record(1)
                        logger.info("connected to supplier", metadata: ["url": "\(url)"])
                        defer {
                            status.set(connected: false)
                            metrics.supplierConnected.record(0)
                        }
                        for try await message in inbound.messages(maxSize: maxFrameSize) {
                            framesRead.increment()
                            switch message {
                            case .text(let text): try await handle(Array(text.utf8))
                            case .binary(let buffer): try await handle(Array(buffer.readableBytesView))
                            }
                        }
                    }
                }
                logger.notice("supplier closed the feed", metadata: [
                    "frames_read": "\(framesRead.value)",
                    "close_code": "\(closeFrame.map { "\($0.closeCode)" } ?? "none")",
                    "reason": "\(closeFrame?.reason ?? "")",
                ])
            } catch let unusable as KafkaPublisher.Unusable {
                // Reading on would lose every frame read: stop, so the process exits non-zero and
                // its supervisor restarts it with a fresh producer.
                logger.critical("stopping: frames can no longer be published", metadata: ["error": "\(unusable)"])
                throw unusable
            } catch {
                logger.warning("supplier connection failed", metadata: [
                    "url": "\(url)", "attempt": "\(attempt)", "frames_read": "\(framesRead.value)",
                    "error": "\(error)",
                ])
            }
            status.set(connected: false)
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

    /// One frame: count, validate, route, publish (waiting while the window is full).
    private func handle(_ frame: [UInt8]) async throws {
        metrics.received.increment()
        let routed = router.route(frame)
        switch routed {
        case .publish(_, let update):
            let lag = Date().timeIntervalSince1970 - Double(update.updatedAt.millisecondsSinceEpoch) / 1000
            metrics.feedLag.record(lag)
        case .deadLetter(_, let reason):
            metrics.invalid[reason.primaryCode]?.increment()
            logger.warning("invalid frame sent to the dead-letter topic", metadata: [
                "reason": "\(reason.primaryCode.rawValue)", "error": "\(reason)",
                "frame": "\(String(decoding: frame.prefix(200), as: UTF8.self))",
            ])
        }
        try await publisher.publish(routed)
    }
}
