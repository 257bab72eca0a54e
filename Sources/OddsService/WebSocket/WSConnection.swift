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
    /// The peer did not answer a ping within a ping period.
    case pingTimeout
    /// A fragmented message grew past the hard size cap.
    case messageTooBig(Int)
    /// Frames that break RFC 6455 (e.g. a continuation without a message).
    case protocolError(String)

    var code: WebSocketErrorCode {
        switch self {
        case .slowConsumer: .unknown(WebSocketCloseCodes.slowConsumer)
        case .policyViolation: .policyViolation
        case .tooManyConnections: .unknown(WebSocketCloseCodes.tryAgainLater)
        case .shutdown, .pingTimeout: .goingAway
        case .messageTooBig: .messageTooLarge
        case .protocolError: .protocolError
        }
    }

    var reason: String {
        switch self {
        case .slowConsumer(let detail): "slow consumer: \(detail)"
        case .policyViolation(let detail): detail
        case .tooManyConnections: "too many connections"
        case .shutdown: "server shutting down"
        case .pingTimeout: "ping timeout"
        case .messageTooBig(let limit): "message larger than \(limit) bytes"
        case .protocolError(let detail): "protocol error: \(detail)"
        }
    }

    var metricName: String {
        switch self {
        case .slowConsumer: "slow_consumer"
        case .policyViolation: "policy_violation"
        case .tooManyConnections: "too_many_connections"
        case .shutdown: "shutdown"
        case .pingTimeout: "ping_timeout"
        case .messageTooBig: "message_too_big"
        case .protocolError: "protocol_error"
        }
    }

    /// The close frame telling the client why.
    var closeFrame: WebSocketFrame {
        var data = ByteBuffer()
        data.write(webSocketErrorCode: code)
        data.writeString(String(reason.utf8.prefix(120)) ?? "")  // a close frame's payload is at most 125 bytes
        return WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
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
    /// Connections with frames written but not yet flushed (event loop only). Kept apart from
    /// `pending` on purpose: routing these through `drain` costs a lock and a writability check
    /// per frame on the hottest path (an A/B run at 6,000 clients: +5–10 % server CPU, p99
    /// 28–94 ms → 112–127 ms).
    private let unflushed: NIOLoopBoundBox<(connections: [WSConnection], flushScheduled: Bool)>

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        unflushed = NIOLoopBoundBox(([], false), eventLoop: eventLoop)
    }

    /// On the event loop: `connections` got frames written without a flush. One task flushes
    /// them all after the tasks already queued have run, so when updates arrive faster than
    /// the loop turns, a socket gets several frames per system call instead of one each (on a
    /// loaded machine that halves the syscalls on both ends); when idle it costs one task hop.
    func flushSoon(_ connections: [WSConnection]) {
        guard !connections.isEmpty else { return }
        unflushed.value.connections.append(contentsOf: connections)
        guard !unflushed.value.flushScheduled else { return }
        unflushed.value.flushScheduled = true
        eventLoop.execute { self.flushWritten() }
    }

    private func flushWritten() {
        let connections = unflushed.value.connections
        unflushed.value = ([], false)
        for connection in connections { connection.flushWritten() }
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
    /// The channel's core (event loop only): pre-framed bytes are written into it directly, as
    /// the pipeline's head handler would, skipping the pipeline walk. At 200,000 frames/s the
    /// walk (and the frame encoder) cost a fifth of the server's CPU. Control frames (pings,
    /// close) still go through the pipeline's encoder; both append to the same socket in call
    /// order on the event loop, so frames never interleave.
    private let core: NIOLoopBound<any ChannelCore>?

    struct Inner {
        var state: ConnectionState
        var closed: ServerCloseReason?
        var isClosed = false
        /// Our close frame is written (the handshake then waits for the client's).
        var closeFrameSent = false
        /// A ping was sent and nothing has been heard from the peer since.
        var pingOutstanding = false
        var lastPingAt: ContinuousClock.Instant
        /// Already in the flusher's list (or waiting for writability).
        var scheduled = false
        /// When the socket last took frames (heartbeat idleness), as of the last sweep.
        var lastSentAt: ContinuousClock.Instant
        /// Frames were written since the last sweep (a flag, not a clock read per frame).
        var sentSinceSweep = false
        /// Since when frames wait for an unwritable socket; nil while it drains.
        var blockedSince: ContinuousClock.Instant?
        /// The channel's writability as of its last change (NIO's write-buffer watermarks),
        /// kept here so the fan-out reads it under the lock it takes anyway: asking the channel
        /// reads an atomic in its own heap object, a cache miss per frame per subscriber (about
        /// 4 % of the server's CPU at 2,000 subscribers).
        var writable = true
    }

    init(id: UInt64, channel: (any Channel)?, flusher: EventLoopFlusher?, limits: ServiceConfiguration.WebSocketLimits,
         metrics: ServiceMetrics) {
        self.id = id
        self.channel = channel
        self.flusher = flusher
        self.metrics = metrics
        if let channel {
            core = NIOLoopBound(channel._channelCore, eventLoop: channel.eventLoop)
        } else {
            core = nil
        }
        inner = Mutex(Inner(
            state: ConnectionState(maxSubscriptions: limits.maxSubscriptions, queueLimit: limits.queueLimit,
                                   queueHardLimit: limits.queueHardLimit),
            lastPingAt: .now, lastSentAt: .now))
    }

    var isClosed: Bool { inner.withLock { $0.isClosed } }
    var closeReason: ServerCloseReason? { inner.withLock { $0.closed } }
    var subscriptions: Set<String> { inner.withLock { $0.state.subscriptions } }
    var pendingCount: Int { inner.withLock { $0.state.queue.count } }
    private enum Wake {
        case none
        case schedule
    }

    /// Called with the lock held after frames were queued. (Without a channel nothing drains
    /// the queue: only `hub.open(channel: nil)` in tests makes such a connection.)
    private func wakeUp(_ inner: inout Inner) -> Wake {
        guard flusher != nil, !inner.scheduled else { return .none }
        inner.scheduled = true
        return .schedule
    }

    private func perform(_ wake: Wake) {
        if case .schedule = wake { flusher?.schedule(self) }
    }

    // MARK: producers (fan-out, reader, sweeper)

    /// A live update. Never waits for the socket.
    func offer(_ update: OddsUpdate, frame: PendingFrame) {
        if accept(update, frame: frame, canSendNow: false) == .stale { metrics.staleDropped() }
    }

    /// A live update, called on this connection's event loop by the fan-out. When nothing is
    /// pending and the socket takes writes, the frame is written to the channel at once (no
    /// queue); the caller then hands the connection to `EventLoopFlusher.flushSoon`. Otherwise
    /// as `offer`. Returns the outcome for the caller's tallies (`.sendNow`: written, `.stale`:
    /// dropped by the version guard; neither is counted here).
    func deliverOnLoop(_ update: OddsUpdate, frame: PendingFrame) -> ConnectionState.DeltaResult {
        guard let core else {
            return accept(update, frame: frame, canSendNow: false)
        }
        let result = accept(update, frame: frame, canSendNow: true)
        if result == .sendNow { core.value.write0(NIOAny(frame.wire), promise: nil) }
        return result
    }

    /// The channel's writability changed (event loop only, from the connection's handler).
    func writabilityChanged(_ writable: Bool) {
        inner.withLock { $0.writable = writable }
    }

    /// Flushes what `deliverOnLoop` wrote (event loop only).
    func flushWritten() {
        core?.value.flush0()
    }

    private func accept(_ update: OddsUpdate, frame: PendingFrame, canSendNow: Bool) -> ConnectionState.DeltaResult {
        let (result, wake) = inner.withLock { inner -> (ConnectionState.DeltaResult, Wake) in
            guard !inner.isClosed else { return (.notSubscribed, .none) }
            // `scheduled`: the flusher has work for this connection; a direct write would jump it.
            let result = inner.state.offer(update, frame: frame, canSendNow: canSendNow && inner.writable && !inner.scheduled)
            switch result {
            case .sendNow:
                inner.sentSinceSweep = true
                return (result, .none)
            case .queued, .conflated: return (result, wakeUp(&inner))
            default: return (result, .none)
            }
        }
        perform(wake)
        switch result {
        case .conflated(let dropped): metrics.conflated(dropped)
        case .overflow: close(.slowConsumer("more than \(inner.withLock { $0.state.queue.hardLimit }) frames pending"))
        case .sendNow, .stale, .queued, .buffered, .notSubscribed: break
        }
        return result
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
    /// `status` (feeds of the snapshot's markets → the event's platform status) runs under this
    /// connection's lock, after the snapshot's feeds are known to the hub: a feed status change
    /// either finds the event still awaiting its snapshot (and the snapshot reads the new
    /// status) or is queued after it.
    func completeSnapshot(eventId: String, markets: [OddsUpdate],
                          status: (Set<String>) -> EventStatus? = { _ in nil }) {
        push { state in
            state.completeSnapshot(eventId: eventId, markets: markets, status: status) { send, current in
                let carried = current?.isSuspended == true ? current : nil
                return PendingFrame(kind: .snapshot, bytes: ByteBuffer(string: ServerMessage.snapshot(
                    eventId: eventId, markets: send, status: carried).jsonString()), eventId: eventId)
            }?.result ?? .queued
        }
    }

    /// An event's platform status changed (see `ConnectionState.offerStatus`). Returns true
    /// when a frame was queued.
    @discardableResult
    func offerStatus(eventId: String, status: EventStatus, frame: PendingFrame) -> Bool {
        let (result, wake) = inner.withLock { inner -> (ConnectionState.StatusResult, Wake) in
            guard !inner.isClosed else { return (.notSubscribed, .none) }
            let result = inner.state.offerStatus(eventId: eventId, status: status, frame: frame)
            switch result {
            case .queued, .conflated, .overflow: return (result, wakeUp(&inner))
            case .notSubscribed, .awaitingSnapshot, .unchanged: return (result, .none)
            }
        }
        perform(wake)
        switch result {
        case .conflated(let dropped): metrics.conflated(dropped)
        case .overflow: close(.slowConsumer("more than \(inner.withLock { $0.state.queue.hardLimit }) frames pending"))
        case .queued, .notSubscribed, .awaitingSnapshot, .unchanged: break
        }
        switch result {
        case .queued, .conflated: return true
        default: return false
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
            inner.sentSinceSweep = true
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
            if let core {
                for frame in batch { core.value.write0(NIOAny(frame.wire), promise: nil) }
                core.value.flush0()
            }
            metrics.framesSent(batch)
            if more { flusher.schedule(self) }
        }
    }

    // MARK: sweeper

    /// Something arrived from the peer (any frame answers a ping).
    func heard() {
        inner.withLock { $0.pingOutstanding = false }
    }

    /// Heartbeat when idle; a WebSocket ping every `pingInterval`, and a close when the previous
    /// one got no answer (dead peer); slow-consumer close when the socket has been blocked too long.
    func sweep(now: ContinuousClock.Instant, heartbeat: Duration, sendTimeout: Duration, pingInterval: Duration) {
        enum Action { case none, heartbeat, ping, slow, dead }
        let actions = inner.withLock { inner -> (Action, Action) in
            guard !inner.isClosed else { return (.none, .none) }
            if inner.sentSinceSweep {
                inner.sentSinceSweep = false
                inner.lastSentAt = now
            }
            var ping = Action.none
            if now - inner.lastPingAt >= pingInterval {
                if inner.pingOutstanding { return (.dead, .none) }
                inner.pingOutstanding = true
                inner.lastPingAt = now
                ping = .ping
            }
            if let blocked = inner.blockedSince {
                return (now - blocked > sendTimeout ? .slow : .none, ping)
            }
            if inner.state.queue.isEmpty && now - inner.lastSentAt >= heartbeat { return (.heartbeat, ping) }
            return (.none, ping)
        }
        for action in [actions.0, actions.1] {
            switch action {
            case .none: break
            case .heartbeat: send(.control(.heartbeat, .heartbeat))
            case .ping: writeControl(opcode: .ping, data: ByteBuffer())
            case .slow: close(.slowConsumer("the socket did not drain for more than \(sendTimeout)"))
            case .dead: close(.pingTimeout)
            }
        }
    }

    /// A control frame (ping, pong) written through the pipeline's frame encoder, from any thread.
    func writeControl(opcode: WebSocketOpcode, data: ByteBuffer) {
        guard let channel, !isClosed else { return }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: opcode, data: data), promise: nil)
    }

    // MARK: close

    /// Marks the connection closed (nothing more is written, the hub stops offering) and, with a
    /// reason, starts the close handshake: a close frame with the reason's code, then the socket
    /// is closed when the client answers or after 2 s. Returns false if it was already closed.
    @discardableResult
    func close(_ reason: ServerCloseReason?) -> Bool {
        let (first, subscriptionCount, sendFrame) = inner.withLock { inner -> (Bool, Int, Bool) in
            guard !inner.isClosed else { return (false, 0, false) }
            inner.isClosed = true
            inner.closed = reason
            let sendFrame = reason != nil && !inner.closeFrameSent
            if sendFrame { inner.closeFrameSent = true }
            return (true, inner.state.subscriptionCount, sendFrame)
        }
        guard first else { return false }
        metrics.subscriptionsChanged(by: -subscriptionCount)
        guard let reason else { return true }
        metrics.serverClose(reason.metricName)
        if case .slowConsumer = reason { metrics.slowClose() }
        if sendFrame, let channel { Self.closeChannel(channel, reason: reason) }
        return true
    }

    /// Writes the reason's close frame and closes the socket after the client's answer (see
    /// `clientClosed`) or 2 s: a client that is merely slow can still read up to the frame.
    static func closeChannel(_ channel: any Channel, reason: ServerCloseReason) {
        channel.writeAndFlush(reason.closeFrame, promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    /// The client's close frame: the handshake ends (our frame was sent: close now) or is
    /// answered with the client's status code, then the socket is closed.
    func clientClosed(_ payload: ByteBuffer) {
        let (alreadySent, subscriptionCount) = inner.withLock { inner -> (Bool, Int) in
            let alreadySent = inner.closeFrameSent
            inner.closeFrameSent = true
            let count = inner.isClosed ? 0 : inner.state.subscriptionCount
            inner.isClosed = true
            return (alreadySent, count)
        }
        metrics.subscriptionsChanged(by: -subscriptionCount)
        guard let channel else { return }
        if alreadySent {
            channel.close(promise: nil)
            return
        }
        var echo = ByteBuffer()
        var payload = payload
        if let code = payload.readInteger(as: UInt16.self) { echo.writeInteger(code) }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
