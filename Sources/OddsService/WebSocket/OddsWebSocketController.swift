import Contracts
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// Request context of the WebSocket router: keeps the channel so the server can close a slow
/// consumer whose writer is blocked.
struct OddsWebSocketRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
    }
}

/// `/ws/odds`: one reader loop (client frames: limits, subscribe/unsubscribe/ping) and one
/// writer task (drains the connection's queue) per connection.
struct OddsWebSocketController: Sendable {
    let hub: FanOutHub
    let query: OddsQueryService
    let limits: ServiceConfiguration.WebSocketLimits
    let metrics: ServiceMetrics
    let logger: Logger

    func addRoutes(to router: Router<OddsWebSocketRequestContext>) {
        // At WS_MAX_CONNECTIONS the upgrade is refused: the request then reaches the HTTP router,
        // which answers 503 `too_many_connections` (see `addHTTPFallback`). A race past this
        // check is caught by `hub.open` and closed with 4013.
        router.ws("/ws/odds", shouldUpgrade: { [hub, limits] _, _ in
            hub.connectionCount < limits.maxConnections ? .upgrade([:]) : .dontUpgrade
        }) { inbound, outbound, context in
            try await handle(inbound: inbound, outbound: outbound, channel: context.requestContext.channel)
        }
    }

    /// `GET /ws/odds` without an accepted upgrade.
    func addHTTPFallback(to router: Router<BasicRequestContext>) {
        router.get("/ws/odds") { [hub, limits, metrics] _, _ -> Response in
            if hub.connectionCount >= limits.maxConnections {
                metrics.serverClose(ServerCloseReason.tooManyConnections.metricName)
                throw APIError(status: .serviceUnavailable, code: "too_many_connections",
                               message: "at most \(limits.maxConnections) WebSocket connections; retry later")
            }
            throw APIError(status: .badRequest, code: "upgrade_required", message: "connect with a WebSocket upgrade")
        }
    }

    func handle(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, channel: (any Channel)?) async throws {
        guard let connection = hub.open(channel: channel) else {
            let reason = ServerCloseReason.tooManyConnections
            metrics.serverClose(reason.metricName)
            try await outbound.close(reason.code, reason: reason.reason)
            return
        }
        defer { hub.remove(connection) }
        // Small per-socket write buffer: a client that stops reading holds at most ~32 KiB in
        // NIO (plus the kernel buffer); the rest waits in the bounded, conflating queue.
        if let channel {
            _ = channel.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 8 * 1024, high: 32 * 1024))
        }
        let decision = await withTaskGroup(of: Void.self) { group -> ServerCloseReason? in
            group.addTask { await writeLoop(connection, outbound: outbound) }
            let decision = await readLoop(connection, inbound: inbound)
            connection.close(decision)
            group.cancelAll()
            return decision
        }
        if let decision {
            try? await outbound.close(decision.code, reason: decision.reason)
        }
    }

    /// Without a channel (never in the server) a task writes the queue through the async writer;
    /// with one, `WSConnection.flushOnEventLoop` writes and this task only waits for the end.
    func writeLoop(_ connection: WSConnection, outbound: WebSocketOutboundWriter) async {
        guard !connection.isChannelDriven else { return }
        while let batch = await connection.nextBatch() {
            do {
                for frame in batch {
                    try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: frame.bytes)))
                }
            } catch {
                connection.close(nil)
                return
            }
            connection.batchWritten()
            metrics.framesSent(batch)
        }
    }

    /// Reads client frames. Returns a close reason when the client is abusive, nil when it left.
    func readLoop(_ connection: WSConnection, inbound: WebSocketInboundStream) async -> ServerCloseReason? {
        var bucket = TokenBucket(ratePerSecond: limits.maxMessagesPerSecond)
        var violations = 0
        do {
            for try await message in inbound.messages(maxSize: limits.hardFrameBytes) {
                if connection.isClosed { return nil }
                guard bucket.take() else {
                    violations += 1
                    if violations >= limits.abusiveViolations {
                        metrics.inboundRejected("rate_limited")
                        return .policyViolation("inbound message rate limit exceeded")
                    }
                    reject(connection, code: "rate_limited",
                           message: "at most \(limits.maxMessagesPerSecond) messages per second; message ignored")
                    continue
                }
                violations = 0
                switch message {
                case .text(let text):
                    let size = text.utf8.count
                    if size > limits.maxFrameBytes {
                        reject(connection, code: "frame_too_large",
                               message: "frame is \(size) bytes, the limit is \(limits.maxFrameBytes)")
                        continue
                    }
                    await handle(ClientMessage.parse(text.utf8), on: connection)
                case .binary:
                    reject(connection, code: "bad_frame", message: "binary frames are not supported; send JSON text frames")
                }
            }
        } catch {
            logger.debug("websocket read ended", metadata: ["connection": "\(connection.id)", "error": "\(error)"])
        }
        return nil
    }

    func handle(_ parsed: Result<ClientMessage, ClientMessageError>, on connection: WSConnection) async {
        switch parsed {
        case .failure(let error):
            reject(connection, code: error.code, message: error.message)
        case .success(.ping):
            connection.send(.control(.pong, .pong))
        case .success(.unsubscribe(let eventIds)):
            _ = connection.unsubscribe(eventIds: eventIds)
            hub.detach(connection, from: eventIds)
        case .success(.subscribe(let eventIds, let versions)):
            switch connection.subscribe(eventIds: eventIds, resume: versions) {
            case .failure(.tooManySubscriptions(let limit)):
                reject(connection, code: "too_many_subscriptions",
                       message: "at most \(limit) subscriptions per connection; subscribe ignored")
            case .success(let started):
                guard !started.isEmpty else { return }
                // Register for deltas first (held back until the snapshot is queued), then read.
                hub.attach(connection, to: started)
                var snapshots: [String: [OddsUpdate]] = [:]
                do {
                    snapshots = try await query.currentOdds(eventIds: started)
                } catch {
                    logger.warning("snapshot read failed", metadata: ["error": "\(error)"])
                    reject(connection, code: "snapshot_unavailable",
                           message: "the current odds could not be read; live updates follow")
                }
                for eventId in started {
                    connection.completeSnapshot(eventId: eventId, markets: snapshots[eventId] ?? [])
                }
            }
        }
    }

    private func reject(_ connection: WSConnection, code: String, message: String) {
        metrics.inboundRejected(code)
        connection.send(.control(.error, .error(code: code, message: message)))
    }
}
