import Contracts
import Foundation
import Hummingbird
import NIOCore
import NIOWebSocket
import Synchronization

/// Why the server ends a connection, and the close code the client sees.
enum ServerCloseReason: Sendable, Equatable {
    /// The client cannot keep up: queue over its hard limit, or a write blocked too long.
    case slowConsumer(String)
    /// Inbound rate abuse.
    case policyViolation(String)
    /// Over WS_MAX_CONNECTIONS.
    case tooManyConnections
    case shutdown

    var code: WebSocketErrorCode {
        switch self {
        case .slowConsumer: .unknown(WebSocketCloseCodes.slowConsumer)
        case .policyViolation: .policyViolation
        case .tooManyConnections: .unknown(WebSocketCloseCodes.tryAgainLater)
        case .shutdown: .goingAway
        }
    }

    var reason: String {
        switch self {
        case .slowConsumer(let detail): "slow consumer: \(detail)"
        case .policyViolation(let detail): detail
        case .tooManyConnections: "too many connections"
        case .shutdown: "server shutting down"
        }
    }

    var metricName: String {
        switch self {
        case .slowConsumer: "slow_consumer"
        case .policyViolation: "policy_violation"
        case .tooManyConnections: "too_many_connections"
        case .shutdown: "shutdown"
        }
    }
}

/// Close codes odds-service uses besides the RFC 6455 ones (1000 normal, 1001 going away /
/// ping timeout or shutdown, 1008 policy violation, 1009 frame above the hard size cap).
enum WebSocketCloseCodes {
    /// Private-use code: the client did not read fast enough (conflation was not enough).
    static let slowConsumer: UInt16 = 4000
    /// Private-use mirror of the registered 1013 "Try Again Later": the server is at
    /// WS_MAX_CONNECTIONS. (NIO's WebSocket state machine treats 1013 as a protocol error.)
    static let tryAgainLater: UInt16 = 4013
}

/// One WebSocket client: its `ConnectionState` behind a mutex, and a wake-up for its writer
/// task. `offer` (called by the fan-out) never blocks on the socket: it queues and returns.
final class WSConnection: Sendable {
    let id: UInt64
    private let channel: (any Channel)?
    private let metrics: ServiceMetrics
    private let inner: Mutex<Inner>

    struct Inner {
        var state: ConnectionState
        var closed: ServerCloseReason?
        var isClosed = false
        var waiter: CheckedContinuation<Void, Never>?
        /// When the writer last finished writing (heartbeat idleness).
        var lastSentAt: ContinuousClock.Instant
        /// When the writer took its current batch; nil while it waits for frames.
        var writeStartedAt: ContinuousClock.Instant?
    }

    init(id: UInt64, channel: (any Channel)?, limits: ServiceConfiguration.WebSocketLimits, metrics: ServiceMetrics) {
        self.id = id
        self.channel = channel
        self.metrics = metrics
        inner = Mutex(Inner(
            state: ConnectionState(maxSubscriptions: limits.maxSubscriptions, queueLimit: limits.queueLimit,
                                   queueHardLimit: limits.queueHardLimit),
            lastSentAt: .now))
    }

    var isClosed: Bool { inner.withLock { $0.isClosed } }
    var closeReason: ServerCloseReason? { inner.withLock { $0.closed } }
    var subscriptions: Set<String> { inner.withLock { $0.state.subscriptions } }
    var pendingCount: Int { inner.withLock { $0.state.queue.count } }

    // MARK: producers (fan-out, reader, sweeper)

    /// A live update. Never waits for the socket.
    func offer(_ update: OddsUpdate, frame: PendingFrame) {
        let (result, waiter) = inner.withLock { inner -> (ConnectionState.DeltaResult, CheckedContinuation<Void, Never>?) in
            guard !inner.isClosed else { return (.notSubscribed, nil) }
            let result = inner.state.offer(update, frame: frame)
            switch result {
            case .queued, .conflated:
                let waiter = inner.waiter
                inner.waiter = nil
                return (result, waiter)
            default:
                return (result, nil)
            }
        }
        waiter?.resume()
        switch result {
        case .stale: metrics.staleDropped()
        case .conflated(let dropped): metrics.conflated(dropped)
        case .overflow: close(.slowConsumer("more than \(inner.withLock { $0.state.queue.hardLimit }) frames pending"))
        case .queued, .buffered, .notSubscribed: break
        }
    }

    /// Queues a control frame (pong, error, heartbeat).
    func send(_ frame: PendingFrame) {
        push { $0.enqueue(frame) }
    }

    func subscribe(eventIds: [String], resume: [String: Int64]) -> Result<[String], ConnectionState.SubscribeError> {
        inner.withLock { inner in
            guard !inner.isClosed else { return .success([]) }
            let before = inner.state.subscriptionCount
            let result = inner.state.subscribe(eventIds: eventIds, resume: resume)
            metrics.subscriptionsChanged(by: inner.state.subscriptionCount - before)
            return result
        }
    }

    /// Queues the snapshot of a freshly subscribed event (see `ConnectionState.completeSnapshot`).
    func completeSnapshot(eventId: String, markets: [OddsUpdate]) {
        push { state in
            state.completeSnapshot(eventId: eventId, markets: markets) { send in
                PendingFrame(kind: .snapshot,
                             bytes: ByteBuffer(string: ServerMessage.snapshot(eventId: eventId, markets: send).jsonString()),
                             eventId: eventId)
            }?.result ?? .queued
        }
    }

    func unsubscribe(eventIds: [String]) -> [String] {
        inner.withLock { inner in
            let removed = inner.state.unsubscribe(eventIds: eventIds)
            metrics.subscriptionsChanged(by: -removed.count)
            return removed
        }
    }

    private func push(_ body: (inout ConnectionState) -> OutboundQueue.PushResult) {
        let (result, waiter) = inner.withLock { inner -> (OutboundQueue.PushResult?, CheckedContinuation<Void, Never>?) in
            guard !inner.isClosed else { return (nil, nil) }
            let result = body(&inner.state)
            let waiter = inner.waiter
            inner.waiter = nil
            return (result, waiter)
        }
        waiter?.resume()
        switch result {
        case .conflated(let dropped)?: metrics.conflated(dropped)
        case .overflow?: close(.slowConsumer("more than \(inner.withLock { $0.state.queue.hardLimit }) frames pending"))
        default: break
        }
    }

    // MARK: writer

    /// The next frames to write; waits while there are none. Nil once the connection is closed.
    func nextBatch(max: Int = 64) async -> [PendingFrame]? {
        while true {
            enum Step { case batch([PendingFrame]), closed, wait }
            let step = inner.withLock { inner -> Step in
                if inner.isClosed { return .closed }
                let batch = inner.state.popBatch(max: max)
                if batch.isEmpty { return .wait }
                inner.writeStartedAt = .now
                return .batch(batch)
            }
            switch step {
            case .batch(let batch): return batch
            case .closed: return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = inner.withLock { inner -> Bool in
                        if inner.isClosed || !inner.state.queue.isEmpty { return true }
                        inner.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    func batchWritten() {
        inner.withLock { inner in
            inner.writeStartedAt = nil
            inner.lastSentAt = .now
        }
    }

    // MARK: sweeper

    /// Heartbeat when idle; slow-consumer close when a write has been blocked too long.
    func sweep(now: ContinuousClock.Instant, heartbeat: Duration, sendTimeout: Duration) {
        enum Action { case none, heartbeat, slow }
        let action = inner.withLock { inner -> Action in
            guard !inner.isClosed else { return .none }
            if let started = inner.writeStartedAt {
                return now - started > sendTimeout ? .slow : .none
            }
            if inner.state.queue.isEmpty && now - inner.lastSentAt >= heartbeat { return .heartbeat }
            return .none
        }
        switch action {
        case .none: break
        case .heartbeat: send(.control(.heartbeat, .heartbeat))
        case .slow: close(.slowConsumer("a write was blocked for more than \(sendTimeout)"))
        }
    }

    // MARK: close

    /// Marks the connection closed (the writer stops, the hub stops offering) and, for a
    /// server-side reason, tells the client with a close frame and closes the socket. The close
    /// frame is written straight to the channel: a slow consumer's writer may be blocked.
    /// Returns false if it was already closed.
    @discardableResult
    func close(_ reason: ServerCloseReason?) -> Bool {
        let (first, waiter, subscriptionCount) = inner.withLock { inner -> (Bool, CheckedContinuation<Void, Never>?, Int) in
            guard !inner.isClosed else { return (false, nil, 0) }
            inner.isClosed = true
            inner.closed = reason
            let waiter = inner.waiter
            inner.waiter = nil
            return (true, waiter, inner.state.subscriptionCount)
        }
        guard first else { return false }
        waiter?.resume()
        metrics.subscriptionsChanged(by: -subscriptionCount)
        guard let reason else { return true }
        metrics.serverClose(reason.metricName)
        if case .slowConsumer = reason {
            metrics.slowClose()
            if let channel {
                var data = ByteBuffer()
                data.write(webSocketErrorCode: reason.code)
                data.writeString(reason.reason)
                let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
                channel.writeAndFlush(frame, promise: nil)
                // Give a client that is merely slow a moment to read up to the close frame.
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
        }
        return true
    }
}
