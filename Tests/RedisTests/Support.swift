import IntegrationSupport
import Logging
@testable import Redis

enum Shared {
    /// A client of the shared test Redis (`ODDS_TEST_REDIS_ADDR`); throws when it is not set.
    static func client(poolSize: Int = 4) throws -> RedisClient {
        var configuration = try RedisConfiguration(address: try TestInfrastructure.redisAddress())
        configuration.poolSize = poolSize
        configuration.commandTimeout = .seconds(5)
        return RedisClient(configuration: configuration, logger: logger)
    }

    static let logger: Logger = {
        var logger = Logger(label: "redis-tests")
        logger.logLevel = .critical
        return logger
    }()
}

/// Runs `body` with `client`, shutting the client down afterwards even when `body` throws.
@discardableResult
func withClient<T>(_ client: RedisClient, _ body: (RedisClient) async throws -> T) async throws -> T {
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The subscriber's next event within `timeout`, or nil. (The iterator only references the
/// subscriber's buffer, so a fresh one per call sees the same stream.)
func nextEvent(_ subscriber: RedisSubscriber, timeout: Duration = .seconds(10)) async -> RedisPubSubEvent? {
    await withTaskGroup(of: RedisPubSubEvent?.self) { group in
        group.addTask {
            var iterator = subscriber.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// Skips events other than messages (e.g. none expected) until a message arrives.
func nextMessage(_ subscriber: RedisSubscriber, timeout: Duration = .seconds(10)) async -> RedisPubSubEvent? {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        guard let event = await nextEvent(subscriber, timeout: deadline - ContinuousClock.now) else { return nil }
        switch event {
        case .message, .patternMessage: return event
        default: continue
        }
    }
    return nil
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RedisServerProcess {
    /// SIGKILL (a crash). Also fast: a redis-server spawned through Foundation's `Process` on Linux
    /// can inherit a signal mask that blocks SIGTERM, which would make `stop()` wait 10 s.
    func crash() { stop(signal: SIGKILL) }
}
