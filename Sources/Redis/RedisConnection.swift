import Logging
import Synchronization

/// One blocking hiredis connection.
///
/// **Threading.** Every method blocks the calling thread (network I/O bounded by the configured
/// timeouts) and must be called from one thread at a time, never from Swift's cooperative pool:
/// use `RedisClient`, which runs these calls on its own `NIOThreadPool` threads, or call them from a
/// thread you own.
///
/// **Reconnects and idempotency.** The connection connects lazily. Before each command it checks
/// (non-blocking `poll`) whether the server has closed the idle socket (e.g. Redis restarted) and
/// if so reconnects first, so nothing is sent on a dead socket. When a command fails with a
/// connection error or timeout, the broken hiredis context is dropped and the error is reported;
/// the *next* command reconnects first (one attempt — if that connect fails, that command fails
/// with the connect error). A failed command is never re-sent automatically: after an I/O error
/// nobody knows whether the server executed it, and commands such as `INCR`, `LPUSH` or `PUBLISH`
/// are not idempotent. Callers decide whether to retry (for example the version-guarded
/// compare-and-set script is safe to retry).
public final class RedisConnection: @unchecked Sendable {
    public let configuration: RedisConfiguration
    private let logger: Logger
    private let metrics: RedisMetrics
    /// Shared with the pool: bumped whenever any pooled connection hits a connection error, so that
    /// the others (probably stale too, e.g. after a server restart) reconnect before their next use.
    private let epoch: PoolEpoch?

    private var context: HiredisContext?
    private var connectedEpoch: UInt64 = 0
    private var hasConnectedBefore = false
    private var encoder = RESPCommandEncoder(reservingCapacity: 4096)

    public convenience init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis")) {
        self.init(configuration: configuration, logger: logger, metrics: RedisMetrics(), epoch: nil)
    }

    init(configuration: RedisConfiguration, logger: Logger, metrics: RedisMetrics, epoch: PoolEpoch?) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.epoch = epoch
    }

    /// True while a healthy hiredis context exists (it may still be stale if the server went away silently).
    public var isConnected: Bool { context.map { !$0.hasError } ?? false }

    /// Connects (closing any previous context), authenticates and selects the database. Blocking.
    public func connect() throws(RedisError) {
        context = nil
        let currentEpoch = epoch?.value ?? 0
        let newContext: HiredisContext
        do {
            newContext = try HiredisContext(
                host: configuration.host,
                port: configuration.port,
                connectTimeout: configuration.connectTimeout,
                commandTimeout: configuration.commandTimeout
            )
            if let password = configuration.password {
                var auth: [RedisArgument] = ["AUTH"]
                if let username = configuration.username { auth.append(.string(username)) }
                auth.append(.string(password))
                try Self.expectOK(try Self.roundTrip(newContext, auth, encoder: &encoder), command: "AUTH")
            }
            if configuration.database != 0 {
                try Self.expectOK(
                    try Self.roundTrip(newContext, ["SELECT", .integer(configuration.database)], encoder: &encoder),
                    command: "SELECT"
                )
            }
        } catch {
            metrics.connectFailures.increment()
            logger.debug("redis connect failed", metadata: ["redis": "\(configuration)", "error": "\(error)"])
            throw error
        }
        context = newContext
        connectedEpoch = currentEpoch
        if hasConnectedBefore {
            metrics.reconnects.increment()
            logger.info("redis reconnected", metadata: ["redis": "\(configuration)"])
        } else {
            logger.debug("redis connected", metadata: ["redis": "\(configuration)"])
        }
        hasConnectedBefore = true
    }

    /// Closes the connection; the next command reconnects.
    public func close() {
        context = nil
    }

    /// Sends one command and waits for its reply. Error replies are thrown as `RedisError.server`.
    public func send(_ command: [RedisArgument]) throws(RedisError) -> RESPValue {
        let reply = try sendRaw(command)
        if case .error(let message) = reply {
            metrics.serverErrors.increment()
            throw .server(message: message)
        }
        return reply
    }

    /// Sends one command; an error reply is returned as `.error` instead of thrown.
    public func sendRaw(_ command: [RedisArgument]) throws(RedisError) -> RESPValue {
        let context = try usableContext()
        let start = ContinuousClock.now
        metrics.commands.increment()
        do {
            let reply = try Self.roundTrip(context, command, encoder: &encoder)
            metrics.commandDuration.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
            return reply
        } catch {
            connectionFailed(error, command: command.first)
            throw error
        }
    }

    /// Pipelining: all commands are encoded into one buffer, written with one flush, then one
    /// reply per command is read. The result has one entry per command, in order; an error reply
    /// of one command is its `.failure(.server)` and does not affect the others. A connection
    /// error or timeout fails the whole call (which commands ran is unknown).
    public func pipeline(_ commands: [[RedisArgument]]) throws(RedisError) -> [Result<RESPValue, RedisError>] {
        try pipelineRaw(commands).map { reply in
            if case .error(let message) = reply { return .failure(.server(message: message)) }
            return .success(reply)
        }
    }

    /// Like `pipeline` but error replies stay `.error` values.
    public func pipelineRaw(_ commands: [[RedisArgument]]) throws(RedisError) -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let context = try usableContext()
        let start = ContinuousClock.now
        metrics.commands.increment(by: Int64(commands.count))
        encoder.reset()
        for command in commands { encoder.append(command) }
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        do {
            try context.appendFormatted(encoder.buffer)
            for _ in 0..<commands.count {
                let reply = try context.nextReply()
                if case .error = reply { metrics.serverErrors.increment() }
                replies.append(reply)
            }
        } catch {
            connectionFailed(error, command: commands.first?.first)
            throw error
        }
        if encoder.buffer.capacity > 1 << 22 { encoder = RESPCommandEncoder(reservingCapacity: 4096) }
        metrics.commandDuration.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        return replies
    }

    private func usableContext() throws(RedisError) -> HiredisContext {
        if let context, !context.hasError, connectedEpoch >= (epoch?.value ?? 0), !context.isReadableWhileIdle {
            return context
        }
        if context != nil {
            logger.debug("redis connection is stale, reconnecting", metadata: ["redis": "\(configuration)"])
        }
        do {
            try connect()
        } catch {
            metrics.recordError(error)
            throw error
        }
        return context!
    }

    private func connectionFailed(_ error: RedisError, command: RedisArgument?) {
        metrics.recordError(error)
        context = nil
        epoch?.bump()
        logger.warning("redis command failed; connection dropped, the next command reconnects", metadata: [
            "redis": "\(configuration)",
            "command": "\(command.map(Self.commandName) ?? "?")",
            "error": "\(error)",
        ])
    }

    private static func roundTrip(
        _ context: HiredisContext,
        _ command: [RedisArgument],
        encoder: inout RESPCommandEncoder
    ) throws(RedisError) -> RESPValue {
        encoder.reset()
        encoder.append(command)
        try context.appendFormatted(encoder.buffer)
        return try context.nextReply()
    }

    private static func expectOK(_ reply: RESPValue, command: String) throws(RedisError) {
        switch reply {
        case .simpleString: return
        case .error(let message): throw .server(message: message)
        default: throw .unexpectedReply(command: command, reply: reply.description)
        }
    }

    static func commandName(_ argument: RedisArgument) -> String {
        switch argument {
        case .string(let s): return s.uppercased()
        case .bytes(let b): return String(decoding: b.prefix(32), as: UTF8.self).uppercased()
        case .integer(let i): return String(i)
        }
    }
}

/// Generation counter shared by the connections of one pool.
final class PoolEpoch: Sendable {
    private let counter = Atomic<UInt64>(0)
    var value: UInt64 { counter.load(ordering: .acquiring) }
    func bump() { counter.add(1, ordering: .releasing) }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
