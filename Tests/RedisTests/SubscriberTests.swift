import IntegrationSupport
import Synchronization
import Testing
@testable import Redis

@Suite("RedisSubscriber on the shared Redis", .timeLimit(.minutes(1)))
struct SubscriberTests {
    @Test func fullBufferBlocksTheReaderInsteadOfDropping() async throws {
        let configuration = try RedisConfiguration(address: try TestInfrastructure.redisAddress())
        let channel = TestInfrastructure.uniqueName("redis_test_backpressure")
        var options = RedisSubscriber.Options()
        options.bufferCapacity = 4
        let subscriber = RedisSubscriber(configuration: configuration, channels: [channel], options: options, logger: Shared.logger)
        subscriber.start()
        #expect(await nextEvent(subscriber) == .subscribed)
        try await withClient(try Shared.client()) { client in
            let count = 2000
            let commands: [[RedisArgument]] = (0..<count).map { ["PUBLISH", .string(channel), .string("m\($0)")] }
            _ = try await client.pipeline(commands)
            try await Task.sleep(for: .milliseconds(100))
            var received: [String] = []
            for await event in subscriber {
                guard case .message(_, let payload) = event else { continue }
                received.append(String(decoding: payload, as: UTF8.self))
                if received.count == count { break }
            }
            #expect(received == (0..<count).map { "m\($0)" })
        }
        await subscriber.shutdown()
    }

    /// With a message handler, messages reach it on the reader thread in publish order and
    /// not the sequence; `.subscribed` still comes through the sequence.
    @Test func aMessageHandlerGetsEveryMessageInOrder() async throws {
        let configuration = try RedisConfiguration(address: try TestInfrastructure.redisAddress())
        let channel = TestInfrastructure.uniqueName("redis_test_handler")
        let subscriber = RedisSubscriber(configuration: configuration, channels: [channel], logger: Shared.logger)
        let received = Mutex<[String]>([])
        subscriber.start { name, payload in
            received.withLock { $0.append("\(name == channel ? "" : "wrong channel ")\(String(decoding: payload, as: UTF8.self))") }
        }
        #expect(await nextEvent(subscriber) == .subscribed)
        let count = 500
        try await withClient(try Shared.client()) { client in
            _ = try await client.pipeline((0..<count).map { ["PUBLISH", .string(channel), .string("m\($0)")] })
        }
        let all = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) { received.withLock { $0.count } >= count }
        #expect(all, "waited for \(count) messages at the handler, got \(received.withLock { $0.count })")
        #expect(received.withLock { $0 } == (0..<count).map { "m\($0)" })
        #expect(subscriber.bufferedEventCount == 0, "no message went to the sequence")
        await subscriber.shutdown()
    }

    @Test func shutdownBeforeStartAndTwiceIsHarmless() async throws {
        let configuration = try RedisConfiguration(address: try TestInfrastructure.redisAddress())
        let subscriber = RedisSubscriber(configuration: configuration, channels: ["x"], logger: Shared.logger)
        await subscriber.shutdown()
        await subscriber.shutdown()
        subscriber.start()  // ignored after shutdown
        #expect(await nextEvent(subscriber, timeout: .seconds(1)) == nil)
    }
}
