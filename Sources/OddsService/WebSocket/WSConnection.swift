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

/// Drains the connections of one event loop: one `execute` on the loop per burst of updates,
/// however many of its connections have frames queued. So the data path needs no Swift task
/// switch per frame: the fan-out queues and schedules, the event loop writes and flushes.
final class EventLoopFlusher: Sendable {
    let eventLoop: any EventLoop
    private let pending = Mutex<(connections: [WSConnection], executeScheduled: Bool)>(([], false))

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func schedule(_ connection: WSConnection) {
        let mustExecute = pending.withLock { state -> Bool in
            state.connections.append(connection)
            if state.executeScheduled { return false }
            state.executeScheduled = true
            return true
        }
        guard mustExecute else { return }
        eventLoop.execute { self.drain() }
    }

    private func drain() {
        let connections = pending.withLock { state -> [WSConnection] in
            state.executeScheduled = false
            let connections = state.connections
            state.connections.removeAll(keepingCapacity: true)
            return connections
        }
        for connection in connections { connection.flushOnEventLoop() }
    }
}

/// One WebSocket client: its `ConnectionState` behind a mutex. `offer` (called by the fan-out)
/// never blocks on the socket: it queues and schedules the connection on its event loop's
/// flusher, which writes what is queued while the channel is writable.
final class WSConnection: Sendable {
    let id: UInt64
    private let channel: (any Channel)?
    let flusher: EventLoopFlusher?
    private let metrics: ServiceMetrics
    private let inner: Mutex<Inner>
    /// The head-of-pipeline writer's context (event loop only), installed at the first flush.
    private let wireContext: NIOLoopBoundBox<ChannelHandlerContext?>?

    struct Inner {
        var state: ConnectionState
        var closed: ServerCloseReason?
        var isClosed = false
        /// Writer task wait (only without a channel, i.e. in unit-level use).
        var waiter: CheckedContinuation<Void, Never>?
        /// Already in the flusher's list (or waiting for writability).
        var scheduled = false
        /// When the socket last took frames (heartbeat idleness).
        var lastSentAt: ContinuousClock.Instant
        /// Since when frames wait for an unwritable socket; nil while it drains.
        var blockedSince: ContinuousClock.Instant?
    }

    init(id: UInt64, channel: (any Channel)?, flusher: EventLoopFlusher?, limits: ServiceConfiguration.WebSocketLimits,
         metrics: ServiceMetrics) {
        self.id = id
        self.channel = channel
        self.flusher = flusher
        self.metrics = metrics
        if let channel {
            wireContext = NIOLoopBoundBox<ChannelHandlerContext?>.makeEmptyBox(valueType: ChannelHandlerContext.self,
                                                                               eventLoop: channel.eventLoop)
        } else {
            wireContext = nil
        }
        inner = Mutex(Inner(
            state: ConnectionState(maxSubscriptions: limits.maxSubscriptions, queueLimit: limits.queueLimit,
                                   queueHardLimit: limits.queueHardLimit),
            lastSentAt: .now))
    }

    var isClosed: Bool { inner.withLock { $0.isClosed } }
    var closeReason: ServerCloseReason? { inner.withLock { $0.closed } }
    var subscriptions: Set<String> { inner.withLock { $0.state.subscriptions } }
    var pendingCount: Int { inner.withLock { $0.state.queue.count } }
    /// True when frames are written by the event-loop flusher (no writer task needed).
    var isChannelDriven: Bool { channel != nil && flusher != nil }

    private enum Wake {
        case none
        case resume(CheckedContinuation<Void, Never>)
        case schedule
    }

    /// Called with the lock held after frames were queued.
    private func wakeUp(_ inner: inout Inner) -> Wake {
        if flusher != nil {
            if inner.scheduled { return .none }
            inner.scheduled = true
            return .schedule
        }
        guard let waiter = inner.waiter else { return .none }
        inner.waiter = nil
        return .resume(waiter)
    }

    private func perform(_ wake: Wake) {
        switch wake {
        case .none: break
        case .resume(let waiter): waiter.resume()
        case .schedule: flusher?.schedule(self)
        }
    }

    // MARK: producers (fan-out, reader, sweeper)

    /// A live update. Never waits for the socket.
    func offer(_ update: OddsUpdate, frame: PendingFrame) {
        let (result, wake) = inner.withLock { inner -> (ConnectionState.DeltaResult, Wake) in
            guard !inner.isClosed else { return (.notSubscribed, .none) }
            let result = inner.state.offer(update, frame: frame)
            switch result {
            case .queued, .conflated: return (result, wakeUp(&inner))
            default: return (result, .none)
            }
        }
        perform(wake)
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
        let (result, wake) = inner.withLock { inner -> (OutboundQueue.PushResult?, Wake) in
            guard !inner.isClosed else { return (nil, .none) }
            let result = body(&inner.state)
            return (result, wakeUp(&inner))
        }
        perform(wake)
        switch result {
        case .conflated(let dropped)?: metrics.conflated(dropped)
        case .overflow?: close(.slowConsumer("more than \(inner.withLock { $0.state.queue.hardLimit }) frames pending"))
        default: break
        }
    }

    // MARK: event-loop writer

    /// Runs on the channel's event loop: writes up to 256 queued frames and flushes once. While
    /// the channel is not writable (NIO's write-buffer watermarks: the peer does not read), the
    /// frames stay queued (and conflate) and the flush is retried shortly; the sweeper closes
    /// the connection once it has been blocked longer than WS_SEND_TIMEOUT_MS.
    func flushOnEventLoop() {
        guard let channel, let flusher else { return }
        enum Step { case nothing, retryLater, write([PendingFrame], more: Bool) }
        let step = inner.withLock { inner -> Step in
            if inner.isClosed {
                inner.scheduled = false
                return .nothing
            }
            guard channel.isWritable else {
                if inner.blockedSince == nil { inner.blockedSince = .now }
                return .retryLater
            }
            inner.blockedSince = nil
            let batch = inner.state.popBatch(max: 256)
            if batch.isEmpty {
                inner.scheduled = false
                return .nothing
            }
            inner.lastSentAt = .now
            let more = !inner.state.queue.isEmpty
            if !more { inner.scheduled = false }
            return .write(batch, more: more)
        }
        switch step {
        case .nothing:
            return
        case .retryLater:
            guard channel.isActive else { return }
            channel.eventLoop.scheduleTask(in: .milliseconds(5)) { self.flushOnEventLoop() }
        case .write(let batch, let more):
            if let wireContext {
                if wireContext.value == nil { wireContext.value = WireWriter.install(on: channel) }
                if let context = wireContext.value {
                    for frame in batch { context.write(NIOAny(frame.wire), promise: nil) }
                    context.flush()
                }
            }
            metrics.framesSent(batch)
            if more { flusher.schedule(self) }
        }
    }

    // MARK: task writer (no channel)

    /// The next frames to write; waits while there are none. Nil once the connection is closed.
    func nextBatch(max: Int = 64) async -> [PendingFrame]? {
        while true {
            enum Step { case batch([PendingFrame]), closed, wait }
            let step = inner.withLock { inner -> Step in
                if inner.isClosed { return .closed }
                let batch = inner.state.popBatch(max: max)
                if batch.isEmpty { return .wait }
                inner.blockedSince = .now
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
            inner.blockedSince = nil
            inner.lastSentAt = .now
        }
    }

    // MARK: sweeper

    /// Heartbeat when idle; slow-consumer close when the socket has been blocked too long.
    func sweep(now: ContinuousClock.Instant, heartbeat: Duration, sendTimeout: Duration) {
        enum Action { case none, heartbeat, slow }
        let action = inner.withLock { inner -> Action in
            guard !inner.isClosed else { return .none }
            if let blocked = inner.blockedSince {
                return now - blocked > sendTimeout ? .slow : .none
            }
            if inner.state.queue.isEmpty && now - inner.lastSentAt >= heartbeat { return .heartbeat }
            return .none
        }
        switch action {
        case .none: break
        case .heartbeat: send(.control(.heartbeat, .heartbeat))
        case .slow: close(.slowConsumer("the socket did not drain for more than \(sendTimeout)"))
        }
    }

    // MARK: close

    /// Marks the connection closed (nothing more is written, the hub stops offering) and, for a
    /// slow consumer, tells the client with a close frame written straight to the channel, then
    /// closes the socket. Returns false if it was already closed.
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
