import IntegrationSupport
import Testing
@testable import Redis

@Suite("Lua scripts", .timeLimit(.minutes(1)))
struct ScriptTests {
    /// SCRIPT FLUSH must not disturb other suites, so this runs on a private redis-server.
    @Test func noscriptFallbackAfterScriptFlush() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.crash() }
        let client = RedisClient(configuration: try RedisConfiguration(address: server.address), logger: Shared.logger)
        try await withClient(client) { client in
            let script = RedisScript("return tonumber(ARGV[1]) + 1")
            // Never loaded: EVALSHA gets NOSCRIPT, the client falls back to EVAL.
            #expect(try await client.evalSHA(script, arguments: [1]) == .integer(2))
            let exists = try await client.send("SCRIPT", "EXISTS", script.sha1)
            #expect(exists == .array([.integer(1)]))

            try await client.send("SCRIPT", "FLUSH")
            #expect(try await client.send("SCRIPT", "EXISTS", script.sha1) == .array([.integer(0)]))
            // Raw EVALSHA really fails now...
            let raw = await #expect(throws: RedisError.self) { try await client.send("EVALSHA", script.sha1, 0, 1) }
            #expect(raw?.serverErrorCode == "NOSCRIPT")
            // ...and the helper still works.
            #expect(try await client.evalSHA(script, arguments: [41]) == .integer(42))

            // Pipelined invocations: NOSCRIPT ones are reloaded and re-run in order.
            try await client.send("SCRIPT", "FLUSH")
            let invocations = (0..<100).map { RedisClient.ScriptInvocation(keys: [], arguments: [$0]) }
            let results = try await client.evalSHA(script, invocations: invocations)
            #expect(try results.map { try $0.get() } == (0..<100).map { .integer(Int64($0 + 1)) })
        }
    }

    /// The odds write path: a hash field holding JSON is only replaced by a newer version.
    @Test func compareAndSetKeepsTheMaxVersionUnderConcurrentWriters() async throws {
        try await withClient(try Shared.client(poolSize: 4)) { client in
            let key = TestInfrastructure.uniqueName("odds:current:CAS")
            let field = "1x2"
            func json(_ version: Int) -> String {
                #"{"event_id":"CAS","market":"1x2","odds":{"home":2.15},"version":\#(version)}"#
            }
            #expect(try await client.setIfNewerVersion(key: key, field: field, version: 5, json: json(5)))
            #expect(try await client.setIfNewerVersion(key: key, field: field, version: 5, json: json(5)) == false)
            #expect(try await client.setIfNewerVersion(key: key, field: field, version: 4, json: json(4)) == false)
            #expect(try await client.hgetString(key, field: field) == json(5))
            try await client.del(key)

            let writers = 8
            let writesPerWriter = 250
            let maxima = try await withThrowingTaskGroup(of: Int.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var highest = 0
                        var generator = SystemRandomNumberGenerator()
                        for write in 0..<writesPerWriter {
                            let version = Int.random(in: 1...2000, using: &generator)
                            highest = max(highest, version)
                            if write % 2 == 0 {
                                _ = try await client.setIfNewerVersion(key: key, field: field, version: Int64(version), json: json(version))
                            } else {
                                // Also exercise the pipelined path.
                                let invocation = RedisClient.ScriptInvocation(keys: [key], arguments: [field, version, json(version)])
                                _ = try await client.evalSHA(.setIfNewerVersion, invocations: [invocation])[0].get()
                            }
                        }
                        _ = writer
                        return highest
                    }
                }
                var overall = 0
                for try await highest in group { overall = max(overall, highest) }
                return overall
            }
            #expect(try await client.hgetString(key, field: field) == json(maxima))
            #expect(try await client.hgetall(key).count == 1)
            try await client.del(key)
        }
    }

    @Test func compareAndSetPublishesOnlyWhenApplied() async throws {
        let address = try TestInfrastructure.redisAddress()
        let channel = TestInfrastructure.uniqueName("odds_updates_broadcast")
        let subscriber = RedisSubscriber(configuration: try RedisConfiguration(address: address), channels: [channel], logger: Shared.logger)
        subscriber.start()
        defer { Task { await subscriber.shutdown() } }
        #expect(await nextEvent(subscriber) == .subscribed)
        try await withClient(try Shared.client()) { client in
            let key = TestInfrastructure.uniqueName("odds:current:PUB")
            let message = #"{"eventId":"PUB","payload":{"version":2}}"#
            #expect(try await client.setIfNewerVersion(key: key, field: "btts", version: 2, json: #"{"version":2}"#, publish: (channel, message)))
            #expect(try await client.setIfNewerVersion(key: key, field: "btts", version: 1, json: #"{"version":1}"#, publish: (channel, "stale")) == false)
            #expect(try await client.setIfNewerVersion(key: key, field: "btts", version: 3, json: #"{"version":3}"#, publish: (channel, "v3")))
            #expect(await nextMessage(subscriber) == .message(channel: channel, payload: Array(message.utf8)))
            #expect(await nextMessage(subscriber) == .message(channel: channel, payload: Array("v3".utf8)))
            try await client.del(key)
        }
        await subscriber.shutdown()
    }
}
