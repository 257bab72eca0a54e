import IntegrationSupport
import Testing
@testable import Redis

@Suite("Private redis-server: auth, select, restarts", .timeLimit(.minutes(1)))
struct ServerLifecycleTests {
    @Test func authAndSelectFromURL() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.crash() }
        let password = "pa ss:w@rd"
        let setup = RedisClient(configuration: try RedisConfiguration(address: server.address), logger: Shared.logger)
        try await withClient(setup) { client in
            try await client.send("CONFIG", "SET", "requirepass", password)
        }

        // Without the password: the server's NOAUTH error.
        let anonymous = RedisClient(configuration: try RedisConfiguration(address: server.address), logger: Shared.logger)
        try await withClient(anonymous) { client in
            let error = await #expect(throws: RedisError.self) { try await client.ping() }
            #expect(error?.serverErrorCode == "NOAUTH")
        }
        // Wrong password: AUTH fails on connect with the server's message.
        let wrong = RedisClient(configuration: try RedisConfiguration(url: "redis://:nope@\(server.address)/0"), logger: Shared.logger)
        try await withClient(wrong) { client in
            let error = await #expect(throws: RedisError.self) { try await client.ping() }
            guard case .server(let message)? = error else { throw TestFailure("expected server error, got \(String(describing: error))") }
            #expect(message.contains("WRONGPASS") || message.contains("invalid password"))
        }

        // Password (percent-encoded) and database 5 from the URL.
        let url = "redis://:pa%20ss%3Aw%40rd@\(server.address)/5"
        let client5 = RedisClient(configuration: try RedisConfiguration(url: url), logger: Shared.logger)
        try await withClient(client5) { client in
            try await client.set("where", to: "db5")
            #expect(try await client.send("CLIENT", "INFO").string?.contains("db=5") == true)
        }
        // The default user by name, database 0: the key written to db 5 is not visible.
        let client0 = RedisClient(configuration: try RedisConfiguration(url: "redis://default:pa%20ss%3Aw%40rd@\(server.address)"), logger: Shared.logger)
        try await withClient(client0) { client in
            #expect(try await client.get("where") == nil)
            try await client.send("SELECT", 5)
            #expect(try await client.getString("where") == "db5")
        }
    }

    @Test func commandsFailWhileStoppedAndWorkAfterRestart() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.crash() }
        var configuration = try RedisConfiguration(address: server.address)
        configuration.poolSize = 3
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        try await withClient(RedisClient(configuration: configuration, logger: Shared.logger)) { client in
            // Warm up every pooled connection.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 { group.addTask { try await client.send("BLPOP", "nothing", "0.05") } }
                try await group.waitForAll()
            }
            try await client.set("k", to: "before")

            server.crash()
            let error = await #expect(throws: RedisError.self) { try await client.set("k", to: "during") }
            #expect(error?.isConnectionError == true)
            let again = await #expect(throws: RedisError.self) { try await client.ping() }
            #expect(again?.isConnectionError == true)

            try await server.start()
            // Every connection reconnects by itself; no command fails after the restart.
            for _ in 0..<10 { #expect(try await client.ping() == "PONG") }
            try await client.set("k", to: "after")
            #expect(try await client.getString("k") == "after")

            // Restart without any command in between: idle sockets are detected as closed
            // before use, so the next commands still succeed.
            server.crash()
            try await server.start()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        let pong = try await client.ping()
                        #expect(pong == "PONG")
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func subscriberResumesAcrossRedisRestart() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.crash() }
        let configuration = try RedisConfiguration(address: server.address)
        var options = RedisSubscriber.Options()
        options.maxBackoff = .milliseconds(500)
        let subscriber = RedisSubscriber(
            configuration: configuration,
            channels: ["odds_updates_broadcast"],
            patterns: ["odds.*"],
            options: options,
            logger: Shared.logger
        )
        #expect(subscriber.liveSubscription == nil, "not started")
        subscriber.start()
        #expect(await nextEvent(subscriber) == .subscribed)
        #expect(subscriber.liveSubscription == 1)

        let publisher = RedisClient(configuration: configuration, logger: Shared.logger)
        try await withClient(publisher) { client in
            #expect(try await client.publish("one", to: "odds_updates_broadcast") == 1)
            #expect(await nextEvent(subscriber) == .message(channel: "odds_updates_broadcast", payload: Array("one".utf8)))
            #expect(try await client.publish([UInt8]([0, 1, 2]), to: "odds.MATCH_1") == 1)
            #expect(await nextEvent(subscriber) == .patternMessage(pattern: "odds.*", channel: "odds.MATCH_1", payload: [0, 1, 2]))

            server.crash()
            let noticed = try await TestInfrastructure.waitUntil(timeout: .seconds(5)) { subscriber.liveSubscription == nil }
            #expect(noticed, "waited for the subscriber to report its subscription down")
            try await Task.sleep(for: .milliseconds(300))
            try await server.start()

            guard case .reconnected(let downtime)? = await nextEvent(subscriber, timeout: .seconds(10)) else {
                throw TestFailure("expected .reconnected after the restart")
            }
            #expect(downtime > .milliseconds(200))
            #expect(subscriber.reconnectCount == 1)
            #expect(subscriber.liveSubscription == 2, "a new subscription number after the reconnect")
            // Resubscribed to both the channel and the pattern.
            #expect(try await client.send("PUBSUB", "NUMSUB", "odds_updates_broadcast") == .array([.bulkString(Array("odds_updates_broadcast".utf8)), .integer(1)]))
            #expect(try await client.send("PUBSUB", "NUMPAT") == .integer(1))
            #expect(try await client.publish("two", to: "odds_updates_broadcast") == 1)
            #expect(await nextEvent(subscriber) == .message(channel: "odds_updates_broadcast", payload: Array("two".utf8)))
            #expect(try await client.publish("three", to: "odds.MATCH_2") == 1)
            #expect(await nextEvent(subscriber) == .patternMessage(pattern: "odds.*", channel: "odds.MATCH_2", payload: Array("three".utf8)))

            // Clean shutdown: the subscription goes away and the sequence ends.
            await subscriber.shutdown()
            #expect(subscriber.liveSubscription == nil)
            #expect(await nextEvent(subscriber, timeout: .seconds(2)) == nil)
            let gone = try await TestInfrastructure.waitUntil(timeout: .seconds(5)) {
                try await client.send("PUBSUB", "NUMSUB", "odds_updates_broadcast") == .array([.bulkString(Array("odds_updates_broadcast".utf8)), .integer(0)])
            }
            #expect(gone)
        }
    }

    @Test func subscriberWaitsForARedisThatIsNotUpYet() async throws {
        let server = try RedisServerProcess()
        defer { server.crash() }
        var options = RedisSubscriber.Options()
        options.maxBackoff = .milliseconds(300)
        var configuration = try RedisConfiguration(address: server.address)
        configuration.connectTimeout = .milliseconds(500)
        let subscriber = RedisSubscriber(configuration: configuration, channels: ["late"], options: options, logger: Shared.logger)
        subscriber.start()
        #expect(await nextEvent(subscriber, timeout: .milliseconds(400)) == nil)
        try await server.start()
        #expect(await nextEvent(subscriber, timeout: .seconds(5)) == .subscribed)
        #expect(subscriber.reconnectCount == 0)
        try await withClient(RedisClient(configuration: configuration, logger: Shared.logger)) { client in
            let receivers = try await client.publish("hi", to: "late")
            #expect(receivers == 1)
        }
        #expect(await nextEvent(subscriber) == .message(channel: "late", payload: Array("hi".utf8)))
        await subscriber.shutdown()
    }
}
