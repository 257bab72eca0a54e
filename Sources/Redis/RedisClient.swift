import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// An async Redis client over a bounded pool of blocking hiredis connections.
///
/// - `configuration.poolSize` connections, each with its own thread of a private `NIOThreadPool`:
///   hiredis' blocking calls never run on Swift's cooperative thread pool.
/// - A caller borrows one connection for one command or pipeline. When all are busy it awaits
///   (cancellable) a free one; at most `configuration.maxWaitingRequests` callers may wait, later
///   ones get `RedisError.poolExhausted` instead of an unbounded queue.
/// - Connections connect lazily and reconnect on their next use after a connection error; see
///   `RedisConnection` for why failed commands are not retried automatically. After any connection
///   error every pooled connection reconnects before its next command (a server restart makes all
///   sockets stale, not just the one that noticed).
/// - As a `Service` (swift-service-lifecycle), `run()` waits for graceful shutdown and then
///   closes the pool.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    let logger: Logger
    let metrics: RedisMetrics
    private let pool: ConnectionPool
    private let threadPool: NIOThreadPool
    private let shutDown = Atomic<Bool>(false)

    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis")) {
        self.configuration = configuration
        self.logger = logger
        let metrics = RedisMetrics()
        self.metrics = metrics
        let epoch = PoolEpoch()
        let connections = (0..<configuration.poolSize).map { _ in
            RedisConnection(configuration: configuration, logger: logger, metrics: metrics, epoch: epoch)
        }
        pool = ConnectionPool(connections: connections, maxWaiters: configuration.maxWaitingRequests)
        threadPool = NIOThreadPool(numberOfThreads: configuration.poolSize)
        threadPool.start()
    }

    /// Convenience: `RedisClient(address: "redis://:secret@127.0.0.1:6379/2")` or `"127.0.0.1:6379"`.
    public convenience init(address: String, logger: Logger = Logger(label: "redis")) throws {
        self.init(configuration: try RedisConfiguration(address: address), logger: logger)
    }

    /// Borrows a pooled connection and runs `body` with it on a pool thread (blocking calls are
    /// fine there). Use for several commands that must share one connection (e.g. `WATCH`/`MULTI`).
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (RedisConnection) throws -> T
    ) async throws -> T {
        let connection: RedisConnection
        do {
            connection = try await pool.acquire()
        } catch let error as RedisError {
            metrics.recordError(error)
            throw error
        }
        defer { pool.release(connection) }
        do {
            return try await threadPool.runIfActive { try body(connection) }
        } catch is NIOThreadPoolError.ThreadPoolInactive {
            throw RedisError.shutdown
        }
    }

    /// Sends any command; an error reply is thrown as `RedisError.server(message:)`.
    @discardableResult
    public func send(command: [RedisArgument]) async throws -> RESPValue {
        try await withConnection { try $0.send(command) }
    }

    /// `send(command:)` with variadic arguments: `try await client.send("INCRBY", "k", 5)`.
    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgumentConvertible...) async throws -> RESPValue {
        try await send(command: [.string(name)] + arguments.map(\.redisArgument))
    }

    /// Sends the commands as one pipeline on one connection (one write, N replies); see
    /// `RedisConnection.pipeline`. Returns one result per command, in order.
    public func pipeline(_ commands: [[RedisArgument]]) async throws -> [Result<RESPValue, RedisError>] {
        try await withConnection { try $0.pipeline(commands) }
    }

    /// Closes all connections and stops the threads; later calls throw `RedisError.shutdown`.
    /// Calls in flight finish first.
    public func shutdown() async {
        guard !shutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for connection in pool.close() { connection.close() }
        do {
            try await threadPool.shutdownGracefully()
        } catch {
            logger.debug("redis thread pool shutdown failed", metadata: ["error": "\(error)"])
        }
        logger.debug("redis client shut down", metadata: ["redis": "\(configuration)"])
    }

    deinit {
        if !shutDown.load(ordering: .acquiring) {
            threadPool.shutdownGracefully { _ in }
        }
    }
}

extension RedisClient: Service {
    /// Runs until graceful shutdown (or cancellation), then closes the pool.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
