import Contracts
import Logging
import Synchronization

/// A frame waiting in one client's buffer.
struct QueuedFrame: Sendable {
    let text: String
    /// What the frame carries, for the sent-frames metric; nil for protocol frames (hello,
    /// snapshot) that are not part of the stream.
    let kind: FrameKind?
}

/// What a client's writer does next.
enum WriterStep: Sendable {
    case write([QueuedFrame])
    /// Everything queued was written: send a close frame and end the connection.
    case close(reason: String)
    /// Stop now (the peer went away, or the connection was aborted).
    case stop
}

/// One connected WebSocket client: its bounded frame buffer and its writer's state.
final class FeedSubscriber: Sendable {
    enum Phase: Sendable, Equatable {
        /// Receives every new frame.
        case active
        /// Gets no new frames; the writer closes the connection once the buffer is written.
        case draining(reason: String)
        /// Done: nothing more is written.
        case stopped
    }

    private struct State {
        var queue: [QueuedFrame] = []
        var phase = Phase.active
        var waiter: CheckedContinuation<WriterStep, Never>?
    }

    let id: UInt64
    let remoteAddress: String
    /// Closes the TCP connection at once (slow clients, whose writer may be stuck in a write).
    let abortConnection: @Sendable () -> Void
    /// Room for the frames queued at connect (hello, replay or snapshot) on top of the hub's
    /// per-client capacity: a long replay is bounded by the replay log, not by the live buffer.
    let initialAllowance: Int
    /// Hands frames straight to the connection (false: not now, the socket is full). Used while
    /// the writer waits with nothing queued, so a frame costs no wake-up of the writer task.
    let writeNow: (@Sendable ([QueuedFrame]) -> Bool)?
    private let state = Mutex(State())

    init(id: UInt64, remoteAddress: String, phase: Phase = .active, initialFrames: [QueuedFrame] = [],
         abortConnection: @escaping @Sendable () -> Void, writeNow: (@Sendable ([QueuedFrame]) -> Bool)? = nil) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.abortConnection = abortConnection
        self.writeNow = writeNow
        initialAllowance = initialFrames.count
        state.withLock { state in
            state.phase = phase
            state.queue = initialFrames
        }
    }

    /// Adds `frames` unless that would pass `capacity`; false means the client is too slow.
    func enqueue(_ frames: [QueuedFrame], capacity: Int) -> Bool {
        let limit = capacity + initialAllowance
        let result: (accepted: Bool, waiter: CheckedContinuation<WriterStep, Never>?, batch: [QueuedFrame]) = state.withLock { state in
            guard state.phase == .active else { return (true, nil, []) }
            guard state.queue.count + frames.count <= limit else { return (false, nil, []) }
            // Under the lock, so a close the writer sends later (woken through this lock) follows
            // these frames on the connection.
            if state.waiter != nil, let writeNow, writeNow(frames) { return (true, nil, []) }
            if let waiter = state.waiter {
                // The writer is idle: hand it the frames directly.
                state.waiter = nil
                return (true, waiter, frames)
            }
            state.queue.append(contentsOf: frames)
            return (true, nil, [])
        }
        result.waiter?.resume(returning: .write(result.batch))
        return result.accepted
    }

    /// No new frames; close after the buffered ones are written.
    func drain(reason: String) {
        let waiter: CheckedContinuation<WriterStep, Never>? = state.withLock { state in
            guard state.phase == .active else { return nil }
            state.phase = .draining(reason: reason)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: .close(reason: reason))
    }

    /// Stops the writer; returns how many buffered frames were never written.
    @discardableResult
    func stop() -> Int {
        let (waiter, unsent): (CheckedContinuation<WriterStep, Never>?, Int) = state.withLock { state in
            let unsent = state.queue.count
            state.phase = .stopped
            state.queue.removeAll()
            defer { state.waiter = nil }
            return (state.waiter, unsent)
        }
        waiter?.resume(returning: .stop)
        return unsent
    }

    var bufferedCount: Int { state.withLock { $0.queue.count } }
    /// The writer waits for frames (nothing queued).
    var isWriterWaiting: Bool { state.withLock { $0.waiter != nil } }

    /// Waits for the next thing to do; cancellation stops the writer.
    func nextStep() async -> WriterStep {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WriterStep, Never>) in
                let ready: WriterStep? = state.withLock { state in
                    if !state.queue.isEmpty {
                        var batch: [QueuedFrame] = []
                        swap(&batch, &state.queue)
                        return .write(batch)
                    }
                    switch state.phase {
                    case .active:
                        if Task.isCancelled { return .stop }
                        state.waiter = continuation
                        return nil
                    case .draining(let reason):
                        return .close(reason: reason)
                    case .stopped:
                        return .stop
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            stop()
        }
    }
}

/// Every connected client, and the one place frames enter their buffers (and the journal and
/// the replay log), so the stream order is the order every client receives.
///
/// The hub owns the stream's positions: each stream frame gets the next seq of the hub's epoch.
/// A client connects asking for live frames, a snapshot, or a resume after a position; the
/// frames that answer it (hello, then replay or snapshot) are queued in the same critical section
/// that adds it to the broadcast, so nothing falls between them and the live frames.
final class FeedHub: Sendable {
    private struct State {
        /// Clients that get new frames.
        var active: [UInt64: FeedSubscriber] = [:]
        /// Clients writing their last frames before closing.
        var draining: [UInt64: FeedSubscriber] = [:]
        var nextID: UInt64 = 0
        /// Seq of the latest stream frame (0 before the first).
        var sequence: UInt64 = 0
        var log: ReplayLog
        /// When clients were last sent something (stream frames or alive).
        var lastSent = ContinuousClock.now
        /// The latest valid OddsUpdate text of every market, in catalogue order (snapshots).
        var book: [String]
        /// Set when the supplier shuts down: a client that connects after it is closed at once.
        var closedReason: String?
        /// Woken when the last connection ends (graceful shutdown waits for it).
        var idleWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Woken when a client becomes active (the feed loop sleeps while nobody listens).
        var clientWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0
    }

    /// How a connect was answered (for the log line and the metrics).
    struct Recovery: Sendable, Equatable {
        let hello: FeedHello
        let replayed: Int
    }

    /// Frames one client may have buffered before it counts as too slow and is disconnected.
    let clientBufferCapacity: Int
    let epoch: UInt64
    /// Markets in every snapshot.
    let marketCount: Int
    let journal: Journal?
    let metrics: SupplierMetrics
    let logger: Logger
    private let state: Mutex<State>

    /// - Parameter book: every market's state before the first frame (the snapshot of a stream
    ///   that has not moved yet).
    init(epoch: UInt64, book: [String], replayLog: ReplayLog, clientBufferCapacity: Int, journal: Journal?,
         metrics: SupplierMetrics, logger: Logger) {
        self.epoch = epoch
        marketCount = book.count
        self.clientBufferCapacity = clientBufferCapacity
        self.journal = journal
        self.metrics = metrics
        self.logger = logger
        state = Mutex(State(log: replayLog, book: book))
    }

    /// Adds a client; its first frames (hello, then the replay or snapshot `start` asks for) are
    /// already queued when this returns.
    func connect(remoteAddress: String, start: FeedStart = .live, abortConnection: @escaping @Sendable () -> Void,
                 writeNow: (@Sendable ([QueuedFrame]) -> Bool)? = nil) -> FeedSubscriber {
        let epoch = self.epoch
        let (subscriber, count, woken, recovery) = state.withLock { state in
            state.nextID += 1
            if let reason = state.closedReason {
                // Shutting down: this client (often a reconnect) gets a close frame and nothing
                // else, so it cannot keep the server from stopping.
                let subscriber = FeedSubscriber(id: state.nextID, remoteAddress: remoteAddress,
                                                phase: .draining(reason: reason), abortConnection: abortConnection)
                state.draining[subscriber.id] = subscriber
                return (subscriber, state.active.count + state.draining.count, [CheckedContinuation<Void, Never>](), Recovery?.none)
            }
            state.log.expire(now: .now)
            let (frames, recovery) = Self.opening(for: start, epoch: epoch, state: state)
            let subscriber = FeedSubscriber(id: state.nextID, remoteAddress: remoteAddress, initialFrames: frames,
                                            abortConnection: abortConnection, writeNow: writeNow)
            state.active[subscriber.id] = subscriber
            let woken = Array(state.clientWaiters.values)
            state.clientWaiters.removeAll()
            return (subscriber, state.active.count + state.draining.count, woken, Optional(recovery))
        }
        for waiter in woken { waiter.resume() }
        metrics.connections.record(count)
        var metadata: Logger.Metadata = ["client": "\(subscriber.id)", "remote": "\(remoteAddress)", "connections": "\(count)"]
        if let recovery {
            metrics.record(recovery, markets: marketCount)
            metadata["start"] = "\(start)"
            metadata["recovery"] = "\(recovery.hello.recovery.rawValue)"
            metadata["position"] = "\(recovery.hello.position)"
            if let reason = recovery.hello.reason { metadata["snapshot_reason"] = "\(reason.rawValue)" }
            if recovery.hello.recovery == .replay { metadata["replayed_frames"] = "\(recovery.replayed)" }
        }
        logger.info("feed client connected", metadata: metadata)
        return subscriber
    }

    /// The frames a new client gets before live ones: hello, then what `start` asks for.
    private static func opening(for start: FeedStart, epoch: UInt64, state: State) -> ([QueuedFrame], Recovery) {
        let latest = FeedPosition(epoch: epoch, seq: state.sequence)
        let logFirst = state.log.firstSeq ?? 0
        func snapshot(_ reason: SnapshotReason, after: FeedPosition?) -> ([QueuedFrame], Recovery) {
            let hello = FeedHello(position: latest, recovery: .snapshot, reason: reason, after: after, replayLogFirstSeq: logFirst)
            var frames = [QueuedFrame(text: FeedFrameEncoder.hello(hello), kind: nil)]
            let markets = state.book.count
            frames.reserveCapacity(markets + 3)
            frames.append(QueuedFrame(text: FeedFrameEncoder.snapshotStart(position: latest, markets: markets), kind: nil))
            for (offset, payload) in state.book.enumerated() {
                frames.append(QueuedFrame(text: FeedFrameEncoder.snapshot(position: latest, index: offset + 1, markets: markets, payload: payload), kind: nil))
            }
            frames.append(QueuedFrame(text: FeedFrameEncoder.snapshotComplete(position: latest, markets: markets), kind: nil))
            return (frames, Recovery(hello: hello, replayed: 0))
        }
        switch start {
        case .live:
            let hello = FeedHello(position: latest, recovery: .live, reason: nil, after: nil, replayLogFirstSeq: logFirst)
            return ([QueuedFrame(text: FeedFrameEncoder.hello(hello), kind: nil)], Recovery(hello: hello, replayed: 0))
        case .snapshot:
            return snapshot(.requested, after: nil)
        case .after(let position):
            guard position.epoch == epoch else { return snapshot(.unknownEpoch, after: position) }
            guard position.seq <= state.sequence else { return snapshot(.ahead, after: position) }
            guard let replay = state.log.frames(after: position.seq, latest: state.sequence) else {
                return snapshot(.tooOld, after: position)
            }
            let hello = FeedHello(position: latest, recovery: .replay, reason: nil, after: position, replayLogFirstSeq: logFirst)
            return ([QueuedFrame(text: FeedFrameEncoder.hello(hello), kind: nil)] + replay, Recovery(hello: hello, replayed: replay.count))
        }
    }

    /// Forgets `subscriber` and stops its writer. Safe to call twice (a slow client is
    /// disconnected by the hub, then again when its handler ends); only the first counts.
    func disconnect(_ subscriber: FeedSubscriber) {
        let (wasConnected, count, idle) = state.withLock { state in
            let removed = state.active.removeValue(forKey: subscriber.id) ?? state.draining.removeValue(forKey: subscriber.id)
            let count = state.active.count + state.draining.count
            var idle: [CheckedContinuation<Void, Never>] = []
            if count == 0 {
                idle = Array(state.idleWaiters.values)
                state.idleWaiters.removeAll()
            }
            return (removed != nil, count, idle)
        }
        for waiter in idle { waiter.resume() }
        let unsent = subscriber.stop()
        guard wasConnected else { return }
        if unsent > 0 { metrics.framesUnsent.increment(by: Int64(unsent)) }
        metrics.connections.record(count)
        logger.info("feed client disconnected", metadata: [
            "client": "\(subscriber.id)", "remote": "\(subscriber.remoteAddress)",
            "unsent_frames": "\(unsent)", "connections": "\(count)",
        ])
    }

    /// Clients that receive new frames; the feed only advances while this is above zero.
    var activeCount: Int { state.withLock { $0.active.count } }
    /// Active plus draining clients.
    var connectionCount: Int { state.withLock { $0.active.count + $0.draining.count } }

    /// Gives `frames` the next stream positions, journals them, keeps them in the replay log and
    /// appends them to every active client's buffer. Returns false (and does nothing) when no
    /// client is active. A client whose buffer would overflow is disconnected on the spot: it
    /// cannot keep up, and it must not hold back the others.
    @discardableResult
    func broadcast(_ frames: [EmittedFrame]) -> Bool {
        guard !frames.isEmpty else { return true }
        let capacity = clientBufferCapacity
        let epoch = self.epoch
        let now = ContinuousClock.now
        let (delivered, tooSlow, logFrames, logFirst): (Bool, [FeedSubscriber], Int, UInt64) = state.withLock { state in
            guard !state.active.isEmpty else { return (false, [], 0, 0) }
            var queued: [QueuedFrame] = []
            queued.reserveCapacity(frames.count)
            for frame in frames {
                state.sequence += 1
                let position = FeedPosition(epoch: epoch, seq: state.sequence)
                let entry = QueuedFrame(text: FeedFrameEncoder.odds(position: position, payload: frame.text), kind: frame.kind)
                queued.append(entry)
                state.log.append(seq: state.sequence, frame: entry, at: now)
                if frame.kind == .valid, let market = frame.market { state.book[market] = frame.text }
                journal?.append(FrameEncoder.journalLine(epoch: epoch, seq: state.sequence, frame: frame))
            }
            state.log.expire(now: now)
            state.lastSent = now
            var tooSlow: [FeedSubscriber] = []
            for subscriber in state.active.values where !subscriber.enqueue(queued, capacity: capacity) {
                tooSlow.append(subscriber)
            }
            // Out of the feed at once; `disconnect` below does the bookkeeping.
            for subscriber in tooSlow {
                state.active[subscriber.id] = nil
                state.draining[subscriber.id] = subscriber
            }
            return (true, tooSlow, state.log.count, state.log.firstSeq ?? 0)
        }
        if delivered {
            metrics.recordEmitted(frames)
            metrics.replayLogFrames.record(logFrames)
            metrics.replayLogFirstSeq.record(Int(logFirst))
        }
        for subscriber in tooSlow {
            let buffered = subscriber.bufferedCount
            metrics.slowClientDisconnects.increment()
            logger.warning("feed client too slow; disconnecting it", metadata: [
                "client": "\(subscriber.id)", "remote": "\(subscriber.remoteAddress)",
                "buffered_frames": "\(buffered)", "buffer_capacity": "\(capacity)",
            ])
            subscriber.abortConnection()
            disconnect(subscriber)
        }
        return delivered
    }

    /// When the active clients were last sent anything.
    var lastSent: ContinuousClock.Instant { state.withLock { $0.lastSent } }

    /// Sends every active client an `alive` frame with the latest position (it uses no seq):
    /// the feed is quiet, not gone. Returns how many clients got it.
    @discardableResult
    func broadcastAlive() -> Int {
        let epoch = self.epoch
        let (subscribers, frame): ([FeedSubscriber], QueuedFrame) = state.withLock { state in
            state.lastSent = .now
            let frame = QueuedFrame(text: FeedFrameEncoder.alive(position: FeedPosition(epoch: epoch, seq: state.sequence)), kind: nil)
            return (Array(state.active.values), frame)
        }
        // A client too slow to take one more frame is handled by the next broadcast.
        for subscriber in subscribers { _ = subscriber.enqueue([frame], capacity: clientBufferCapacity) }
        if !subscribers.isEmpty { metrics.aliveFrames.increment(by: Int64(subscribers.count)) }
        return subscribers.count
    }

    /// Frames in the replay log and the first seq kept (0 when empty).
    var replayLogState: (frames: Int, firstSeq: UInt64) {
        state.withLock { ($0.log.count, $0.log.firstSeq ?? 0) }
    }

    /// Moves every active client to draining: each gets the frames already buffered for it, then
    /// a close frame. Returns how many clients were told.
    /// With `closing`, clients that connect afterwards are closed at once (shutdown).
    @discardableResult
    func drainAll(reason: String, closing: Bool = false) -> Int {
        let subscribers: [FeedSubscriber] = state.withLock { state in
            if closing { state.closedReason = reason }
            let moving = Array(state.active.values)
            for subscriber in moving { state.draining[subscriber.id] = subscriber }
            state.active.removeAll()
            return moving
        }
        for subscriber in subscribers { subscriber.drain(reason: reason) }
        return subscribers.count
    }

    /// Waits until every connection ended, at most `timeout`; true when none is left. Woken by
    /// the last disconnect, not by polling.
    func waitUntilNoConnections(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.wait(in: \.idleWaiters) { $0.active.isEmpty && $0.draining.isEmpty }
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let idle = await group.next() ?? false
            group.cancelAll()
            return idle
        }
    }

    /// Returns once a client is active (at once if one is), or when the task is cancelled: the
    /// feed loop waits here instead of ticking while nobody listens.
    func waitForActiveClient() async {
        await wait(in: \.clientWaiters) { !$0.active.isEmpty }
    }

    /// Returns when `ready` holds, checked now and then woken by whoever resumes the waiters in
    /// `waiters`; cancellation ends the wait.
    private func wait(in waiters: any WritableKeyPath<State, [UInt64: CheckedContinuation<Void, Never>]> & Sendable,
                      until ready: @escaping @Sendable (State) -> Bool) async {
        let id: UInt64 = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now: Bool = state.withLock { state in
                    if ready(state) || Task.isCancelled { return true }
                    state[keyPath: waiters][id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0[keyPath: waiters].removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// Closes every remaining connection at once (the drain time is over); returns how many.
    @discardableResult
    func abortAll() -> Int {
        let subscribers: [FeedSubscriber] = state.withLock { state in
            Array(state.active.values) + Array(state.draining.values)
        }
        for subscriber in subscribers {
            subscriber.abortConnection()
            disconnect(subscriber)
        }
        return subscribers.count
    }

    /// Frames journaled (and handed to clients) so far.
    var emittedCount: UInt64 { state.withLock { $0.sequence } }
}
