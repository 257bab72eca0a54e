import Contracts
import Foundation
import Hummingbird
import Logging
import NIOCore

/// `/ws/odds`: who may upgrade, and what a client message does to its connection. The socket
/// side (frames, ping/pong, close) is `OddsWebSocketHandler`, a plain NIO handler: an idle
/// connection costs no Swift task.
struct OddsWebSocketController: Sendable {
    static let path = "/ws/odds"

    let hub: FanOutHub
    let query: OddsQueryService
    let limits: ServiceConfiguration.WebSocketLimits
    let metrics: ServiceMetrics
    let logger: Logger

    /// At WS_MAX_CONNECTIONS the upgrade is refused and answered with `refusal` (503). A race
    /// past this check is caught by `hub.open` and closed with 4013.
    func shouldUpgrade(path: String) -> Bool {
        path == Self.path && hub.connectionCount < limits.maxConnections
    }

    /// The answer to a refused upgrade request: 503 at WS_MAX_CONNECTIONS, 404 on another path.
    func refusal(path: String) -> APIError {
        guard path == Self.path else {
            return APIError(status: .notFound, code: "not_found", message: "no WebSocket endpoint at \(path); use \(Self.path)")
        }
        return tooManyConnections()
    }

    /// `GET /ws/odds` without an upgrade (or on a connection that already served a request).
    func addHTTPFallback(to router: Router<BasicRequestContext>) {
        router.get(RouterPath(stringLiteral: Self.path)) { _, _ -> Response in
            if hub.connectionCount >= limits.maxConnections { throw tooManyConnections() }
            throw APIError(status: .badRequest, code: "upgrade_required",
                           message: "connect with a WebSocket upgrade (as the first request of a connection)")
        }
    }

    private func tooManyConnections() -> APIError {
        metrics.serverClose(ServerCloseReason.tooManyConnections.metricName)
        return APIError(status: .serviceUnavailable, code: "too_many_connections",
                        message: "at most \(limits.maxConnections) WebSocket connections; retry later")
    }

    /// Applies one client message. Returns the events whose snapshot must now be read (then
    /// call `sendSnapshots`), or an empty list when the message is fully handled.
    func apply(_ parsed: Result<ClientMessage, ClientMessageError>, on connection: WSConnection) -> [String] {
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
                // Register for deltas first (held back until the snapshot is queued), then read.
                hub.attach(connection, to: started)
                return started
            }
        }
        return []
    }

    /// Reads the current odds of freshly subscribed events and queues their snapshots.
    func sendSnapshots(of eventIds: [String], to connection: WSConnection) async {
        var snapshots: [String: [OddsUpdate]] = [:]
        do {
            snapshots = try await query.currentOdds(eventIds: eventIds)
        } catch {
            logger.warning("snapshot read failed", metadata: ["error": "\(error)"])
            reject(connection, code: "snapshot_unavailable", message: "the current odds could not be read; live updates follow")
        }
        for eventId in eventIds {
            let markets = snapshots[eventId] ?? []
            // The feeds are registered first, so a feed status change from now on reaches this
            // event; the status itself is read when the snapshot is queued (it then carries a
            // suspension of any of its feeds).
            let feeds = hub.noteFeeds(of: eventId, markets: markets)
            connection.completeSnapshot(eventId: eventId, markets: markets) { [hub] sources in
                hub.eventStatus(feeds: feeds.union(sources))
            }
        }
    }

    func reject(_ connection: WSConnection, code: String, message: String) {
        metrics.inboundRejected(code)
        connection.send(.control(.error, .error(code: code, message: message)))
    }
}
