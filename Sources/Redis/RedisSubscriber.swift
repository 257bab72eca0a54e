import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// An event of a `RedisSubscriber`.
public enum RedisPubSubEvent: Sendable, Hashable {
    /// The first subscription is active (every channel and pattern confirmed by Redis); messages
    /// published from now on are delivered. Emitted once.
    case subscribed
    /// A message published on a subscribed channel.
    case message(channel: String, payload: [UInt8])
    /// A message published on a channel matching a subscribed pattern.
    case patternMessage(pattern: String, channel: String, payload: [UInt8])
    /// The connection was lost and is back, with every channel and pattern subscribed again.
    /// Pub/sub is fire-and-forget: whatever was published during `downtime` is lost, so a
    /// consumer must re-sync its state (e.g. re-read the current odds hash) when it sees this.
    case reconnected(downtime: Duration)
}

/// A pub/sub subscriber on a dedicated connection and a dedicated thread, consumed as an
/// `AsyncSequence` of `RedisPubSubEvent`.
///
/// ```swift
/// let subscriber = RedisSubscriber(configuration: config, channels: ["odds_updates_broadcast"])
/// subscriber.start()
/// for await event in subscriber { ... }     // ends after shutdown()
/// ```
///
/// - Reconnects by itself after any connection loss, with capped exponential backoff (plus
///   jitter), re-subscribes to every channel and pattern, then emits `.reconnected(downtime:)`
///   and increments `redis_subscriber_reconnects_total`.
/// - The reader thread polls the socket with a short timeout (`Options.pollInterval`) so it
///   notices shutdown promptly, and sends a `PING` after `Options.healthCheckInterval` of
///   silence; no reply within `commandTimeout` counts as a lost connection.
/// - Backpressure: events go through a bounded buffer (`Options.bufferCapacity`). When it is full
///   the reader thread blocks (it stops reading the socket), so TCP pushes back on Redis; nothing
///   is dropped silently. If the consumer stays behind long enough for Redis' pub/sub output
///   buffer limit to trip (`client-output-buffer-limit pubsub`, default 32 MB, or 8 MB for 60 s),
///   Redis closes the connection; the subscriber then reconnects and reports the gap with
///   `.reconnected`.
/// - One consumer at a time. Call `shutdown()` (or run it as a `Service`) to unsubscribe, close
///   the connection and end the thread; the sequence then finishes after the buffered events.
public final class RedisSubscriber: AsyncSequence, Sendable {
    public typealias Element = RedisPubSubEvent
    public typealias Failure = Never

    public struct Options: Sendable {
        /// Events buffered between the reader thread and the consumer.
        public var bufferCapacity: Int = 1024
        /// First reconnect delay; doubled after each failed attempt up to `maxBackoff`.
        public var initialBackoff: Duration = .milliseconds(100)
        public var maxBackoff: Duration = .seconds(5)
        /// Socket poll timeout of the reader thread (how fast it notices shutdown).
        public var pollInterval: Duration = .milliseconds(100)
        /// Silence after which the reader sends a `PING` to check the connection.
        public var healthCheckInterval: Duration = .seconds(15)

        public init() {}
    }

    public let configuration: RedisConfiguration
    public let channels: [String]
    public let patterns: [String]
    private let buffer: EventBuffer<RedisPubSubEvent>
    private let reader: SubscriberReader
    private let thread: NIOThreadPool
    private let lifecycle = Mutex<(started: Bool, stopped: Bool)>((false, false))
    private let logger: Logger

    public init(
        configuration: RedisConfiguration,
        channels: [String],
        patterns: [String] = [],
        options: Options = Options(),
        logger: Logger = Logger(label: "redis.subscriber")
    ) {
        precondition(!channels.isEmpty || !patterns.isEmpty, "RedisSubscriber needs at least one channel or pattern")
        self.configuration = configuration
        self.channels = Self.unique(channels)
        self.patterns = Self.unique(patterns)
        self.logger = logger
        buffer = EventBuffer(capacity: options.bufferCapacity)
        reader = SubscriberReader(
            configuration: configuration,
            channels: self.channels,
            patterns: self.patterns,
            options: options,
            buffer: buffer,
            logger: logger
        )
        thread = NIOThreadPool(numberOfThreads: 1)
    }

    /// Handles a channel message on the reader thread, in the order Redis sent them.
    public typealias MessageHandler = @Sendable (_ channel: String, _ payload: [UInt8]) -> Void

    /// Starts the reader thread (idempotent). Connection problems are not thrown: the reader
    /// keeps retrying; `.subscribed` tells when the subscription is live.
    ///
    /// With `onMessage`, channel messages are handed to it on the reader thread instead of
    /// going through the sequence: no hop to a consumer task per message (for a handler that
    /// only does quick, non-blocking work). The other events still come through the sequence; a
    /// session's `.subscribed` or `.reconnected` is queued there before its first message is
    /// handed over, but the consumer may see it after.
    public func start(onMessage: MessageHandler? = nil) {
        let shouldStart = lifecycle.withLock { state in
            guard !state.started && !state.stopped else { return false }
            state.started = true
            return true
        }
        guard shouldStart else { return }
        thread.start()
        let reader = self.reader
        thread.submit { state in
            guard case .active = state else { return }
            reader.run(onMessage: onMessage)
        }
    }

    /// Unsubscribes, closes the connection and waits for the reader thread to exit. The sequence
    /// finishes once the consumer has taken the events already buffered.
    public func shutdown() async {
        let wasStarted: Bool? = lifecycle.withLock { state in
            guard !state.stopped else { return nil }
            state.stopped = true
            return state.started
        }
        guard let wasStarted else { return }
        buffer.requestStop()
        if wasStarted {
            do {
                try await thread.shutdownGracefully()
            } catch {
                logger.debug("subscriber thread shutdown failed", metadata: ["error": "\(error)"])
            }
        }
        buffer.finish()
    }

    deinit {
        let state = lifecycle.withLock { $0 }
        if state.started && !state.stopped {
            buffer.requestStop()
            thread.shutdownGracefully { _ in }
        }
    }

    /// How many times the subscriber has reconnected and resubscribed (each one a possible gap);
    /// the same count as the `redis_subscriber_reconnects_total` metric of this subscriber.
    public var reconnectCount: Int { reader.reconnectCount.load(ordering: .relaxed) }

    /// Events waiting in the buffer for the consumer.
    public var bufferedEventCount: Int { buffer.count }

    /// The number of the current subscription while it is live (1 for the first, then one more
    /// after each reconnect); nil while the connection is down or not yet subscribed. It turns
    /// nil as soon as the reader thread sees the connection fail, before any reconnect attempt,
    /// so a cache kept current by this subscription can tell when it may have missed messages.
    public var liveSubscription: UInt64? { reader.link.liveSubscription }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(buffer: buffer)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: EventBuffer<RedisPubSubEvent>

        public mutating func next() async -> RedisPubSubEvent? {
            await buffer.next()
        }
    }

    private static func unique(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}

extension RedisSubscriber: Service {
    /// Starts the subscriber, waits for graceful shutdown (or cancellation), then shuts it down.
    public func run() async throws {
        start()
        try? await gracefulShutdown()
        await shutdown()
    }
}

/// The reader thread's loop. All mutable state lives in `run()`'s locals (one thread).
final class SubscriberReader: Sendable {
    let configuration: RedisConfiguration
    let channels: [String]
    let patterns: [String]
    let options: RedisSubscriber.Options
    let buffer: EventBuffer<RedisPubSubEvent>
    let logger: Logger
    let metrics = RedisMetrics()
    let reconnectCount = Atomic<Int>(0)
    let link = SubscriptionLink()

    init(
        configuration: RedisConfiguration,
        channels: [String],
        patterns: [String],
        options: RedisSubscriber.Options,
        buffer: EventBuffer<RedisPubSubEvent>,
        logger: Logger
    ) {
        self.configuration = configuration
        self.channels = channels
        self.patterns = patterns
        self.options = options
        self.buffer = buffer
        self.logger = logger
    }

    private struct Progress {
        var everSubscribed = false
        /// When the last connection was lost (nil while connected or before the first connection).
        var downSince: ContinuousClock.Instant?
        var backoff: Duration
        /// Failed connection attempts since the last successful subscription.
        var failures = 0
    }

    func run(onMessage: RedisSubscriber.MessageHandler?) {
        var progress = Progress(backoff: options.initialBackoff)
        logger.debug("redis subscriber started", metadata: ["redis": "\(configuration)", "channels": "\(channels)", "patterns": "\(patterns)"])
        while !buffer.isStopping {
            do {
                try session(&progress, onMessage: onMessage)
            } catch {
                if buffer.isStopping { break }
                progress.failures += 1
                if progress.everSubscribed && progress.downSince == nil {
                    progress.downSince = .now
                    logger.warning("redis subscriber lost its connection; reconnecting", metadata: [
                        "redis": "\(configuration)", "error": "\(error)",
                    ])
                } else if progress.failures == 1 || progress.failures % 30 == 0 {
                    logger.warning("redis subscriber cannot connect; retrying", metadata: [
                        "redis": "\(configuration)", "error": "\(error)", "attempts": "\(progress.failures)",
                    ])
                } else {
                    logger.debug("redis subscriber connect failed", metadata: [
                        "redis": "\(configuration)", "error": "\(error)", "retryIn": "\(progress.backoff)",
                    ])
                }
                let jitter = Double.random(in: 0.8...1.2)
                buffer.sleep(for: progress.backoff * jitter)
                progress.backoff = min(progress.backoff * 2, options.maxBackoff)
            }
        }
        logger.debug("redis subscriber stopped", metadata: ["redis": "\(configuration)"])
    }

    /// One connection: subscribe, then read until an error (thrown) or stop (returns).
    private func session(_ progress: inout Progress, onMessage: RedisSubscriber.MessageHandler?) throws(RedisError) {
        // Down from the moment this connection ends, before any backoff or reconnect.
        defer { link.lost() }
        let context = try HiredisContext(
            host: configuration.host,
            port: configuration.port,
            connectTimeout: configuration.connectTimeout,
            commandTimeout: configuration.commandTimeout
        )
        var encoder = RESPCommandEncoder()
        if let password = configuration.password {
            var auth: [RedisArgument] = ["AUTH"]
            if let username = configuration.username { auth.append(.string(username)) }
            auth.append(.string(password))
            encoder.append(auth)
            try context.appendFormatted(encoder.buffer)
            encoder.reset()
            let reply = try context.nextReply()
            if case .error(let message) = reply { throw .server(message: message) }
        }
        if !channels.isEmpty { encoder.append(["SUBSCRIBE"] + channels.map { .string($0) }) }
        if !patterns.isEmpty { encoder.append(["PSUBSCRIBE"] + patterns.map { .string($0) }) }
        try context.appendFormatted(encoder.buffer)
        try context.flush()

        var pendingChannels = Set(channels)
        var pendingPatterns = Set(patterns)
        var confirmed = false
        var early: [RedisPubSubEvent] = []
        let sessionStart = ContinuousClock.now
        var lastActivity = sessionStart
        var pingSentAt: ContinuousClock.Instant?
        let pollMilliseconds = Int32(clamping: max(1, options.pollInterval.milliseconds))
        let buffer = buffer
        /// To the handler or the consumer; false when the subscriber is stopping.
        func emit(_ event: RedisPubSubEvent) -> Bool {
            if let onMessage, case .message(let channel, let payload) = event {
                onMessage(channel, payload)
                return true
            }
            return buffer.push(event)
        }

        defer {
            // Best effort: tell Redis we are leaving (the socket is closed right after anyway).
            if buffer.isStopping && !context.hasError {
                var bye = RESPCommandEncoder()
                if !channels.isEmpty { bye.append(["UNSUBSCRIBE"]) }
                if !patterns.isEmpty { bye.append(["PUNSUBSCRIBE"]) }
                try? context.appendFormatted(bye.buffer)
                try? context.flush()
            }
        }

        while !buffer.isStopping {
            guard let reply = try context.pollReply(timeoutMilliseconds: pollMilliseconds) else {
                let now = ContinuousClock.now
                if !confirmed && now - sessionStart > configuration.commandTimeout {
                    throw .timeout(message: "subscription not confirmed within \(configuration.commandTimeout)")
                }
                if let sent = pingSentAt {
                    if now - sent > configuration.commandTimeout {
                        throw .timeout(message: "no reply to health-check PING within \(configuration.commandTimeout)")
                    }
                } else if confirmed && now - lastActivity > options.healthCheckInterval {
                    try context.appendFormatted(Self.pingCommand)
                    try context.flush()
                    pingSentAt = now
                }
                continue
            }
            lastActivity = .now

            guard case .array(let items) = reply, let kind = items.first?.string else {
                if case .error(let message) = reply { throw .server(message: message) }
                logger.debug("redis subscriber ignored a reply", metadata: ["reply": "\(reply)"])
                continue
            }
            var event: RedisPubSubEvent?
            switch kind {
            case "message" where items.count == 3:
                event = .message(channel: items[1].string ?? "", payload: items[2].bytes ?? [])
            case "pmessage" where items.count == 4:
                event = .patternMessage(pattern: items[1].string ?? "", channel: items[2].string ?? "", payload: items[3].bytes ?? [])
            case "subscribe":
                if let name = items.dropFirst().first?.string { pendingChannels.remove(name) }
            case "psubscribe":
                if let name = items.dropFirst().first?.string { pendingPatterns.remove(name) }
            case "pong":
                pingSentAt = nil
            default:
                break
            }

            if let event {
                metrics.subscriberMessages.increment()
                if confirmed {
                    if !emit(event) { return }
                    lastActivity = .now
                } else {
                    early.append(event)
                }
            }

            if !confirmed && pendingChannels.isEmpty && pendingPatterns.isEmpty {
                confirmed = true
                link.subscribed()
                progress.backoff = options.initialBackoff
                progress.failures = 0
                if progress.everSubscribed {
                    let downtime = progress.downSince.map { ContinuousClock.now - $0 } ?? .zero
                    progress.downSince = nil
                    metrics.subscriberReconnects.increment()
                    reconnectCount.add(1, ordering: .relaxed)
                    logger.info("redis subscriber reconnected and resubscribed; messages published meanwhile are lost", metadata: [
                        "redis": "\(configuration)", "downtime": "\(downtime)",
                    ])
                    if !buffer.push(.reconnected(downtime: downtime)) { return }
                } else {
                    progress.everSubscribed = true
                    logger.debug("redis subscriber subscribed", metadata: ["redis": "\(configuration)"])
                    if !buffer.push(.subscribed) { return }
                }
                for pending in early where !emit(pending) { return }
                early.removeAll()
            }
        }
    }

    private static let pingCommand: [UInt8] = {
        var encoder = RESPCommandEncoder()
        encoder.append(["PING"])
        return encoder.buffer
    }()
}

/// Whether the subscription is live, and which one: one atomic word (number << 1 | live), so a
/// reader never pairs a subscription number with another subscription's state.
final class SubscriptionLink: Sendable {
    private let word = Atomic<UInt64>(0)

    var liveSubscription: UInt64? {
        let value = word.load(ordering: .acquiring)
        return value & 1 == 1 ? value >> 1 : nil
    }

    /// The reader thread confirmed a new subscription (every channel and pattern acknowledged).
    func subscribed() {
        let number = (word.load(ordering: .relaxed) >> 1) + 1
        word.store(number << 1 | 1, ordering: .releasing)
    }

    /// The connection failed or the reader stopped.
    func lost() {
        word.store(word.load(ordering: .relaxed) & ~1, ordering: .releasing)
    }
}
