import IntegrationSupport
import Testing
@testable import Redis

@Suite("Commands against the shared Redis", .timeLimit(.minutes(1)))
struct CommandTests {
    @Test func pingGetSetDel() async throws {
        try await withClient(try Shared.client()) { client in
            #expect(try await client.ping() == "PONG")
            let key = TestInfrastructure.uniqueName("redis_test_get")
            #expect(try await client.get(key) == nil)
            try await client.set(key, to: "hello")
            #expect(try await client.getString(key) == "hello")
            let binary: [UInt8] = [0, 1, 2, 255, 13, 10, 0]
            try await client.set(key, to: binary)
            #expect(try await client.get(key) == binary)
            #expect(try await client.del(key, key + "_missing") == 1)
            #expect(try await client.get(key) == nil)
        }
    }

    @Test func setWithExpiryAndExpire() async throws {
        try await withClient(try Shared.client()) { client in
            let key = TestInfrastructure.uniqueName("redis_test_ttl")
            try await client.set(key, to: "v", expireSeconds: 100)
            let ttl = try await client.ttl(key)
            #expect((90...100).contains(ttl))

            let other = key + "_b"
            try await client.set(other, to: "v")
            #expect(try await client.ttl(other) == -1)
            #expect(try await client.expire(other, seconds: 50))
            #expect((40...50).contains(try await client.ttl(other)))
            #expect(try await client.expire(key + "_missing", seconds: 5) == false)
            #expect(try await client.ttl(key + "_missing") == -2)

            try await client.set(key, to: "short", expireSeconds: 1)
            let expired = try await TestInfrastructure.waitUntil(timeout: .seconds(4)) {
                try await client.get(key) == nil
            }
            #expect(expired)
            try await client.del(key, other)
        }
    }

    @Test func hashHelpers() async throws {
        try await withClient(try Shared.client()) { client in
            let key = TestInfrastructure.uniqueName("redis_test_hash")
            #expect(try await client.hgetall(key).isEmpty)
            #expect(try await client.hset(key, field: "1x2", to: #"{"version":1}"#) == 1)
            #expect(try await client.hset(key, field: "1x2", to: #"{"version":2}"#) == 0)
            #expect(try await client.hset(key, fields: [("btts", "yes"), ("raw", [UInt8]([0, 9]))]) == 2)
            #expect(try await client.hgetString(key, field: "1x2") == #"{"version":2}"#)
            #expect(try await client.hget(key, field: "nope") == nil)
            let all = try await client.hgetall(key)
            #expect(all == ["1x2": Array(#"{"version":2}"#.utf8), "btts": Array("yes".utf8), "raw": [0, 9]])
            #expect(try await client.hgetallStrings(key)["btts"] == "yes")
            try await client.del(key)
        }
    }

    @Test func publishReturnsReceiverCount() async throws {
        try await withClient(try Shared.client()) { client in
            let receivers = try await client.publish("nobody listens", to: TestInfrastructure.uniqueName("chan"))
            #expect(receivers == 0)
        }
    }

    @Test func allReplyTypes() async throws {
        try await withClient(try Shared.client()) { client in
            let key = TestInfrastructure.uniqueName("redis_test_types")
            #expect(try await client.send("SET", key, "1") == .simpleString("OK"))
            #expect(try await client.send("INCRBY", key, 41) == .integer(42))
            #expect(try await client.send("GET", key) == .bulkString(Array("42".utf8)))
            #expect(try await client.send("GET", key + "_missing") == .null)
            let list = key + "_list"
            try await client.send("RPUSH", list, "a", "b", "")
            #expect(try await client.send("LRANGE", list, 0, -1) == .array([.bulkString([97]), .bulkString([98]), .bulkString([])]))
            #expect(try await client.send("LRANGE", list + "_missing", 0, -1) == .array([]))
            // A nested array with an integer and a null inside: EVAL returns Lua tables as arrays.
            let nested = try await client.send("EVAL", "return {1, 'x', {2, false}}", 0)
            #expect(nested == .array([.integer(1), .bulkString([120]), .array([.integer(2), .null])]))
            // The null array (*-1): BLPOP timing out.
            #expect(try await client.send("BLPOP", key + "_empty", "0.01") == .nullArray)

            // Error replies carry the server's message.
            let error = await #expect(throws: RedisError.self) { try await client.send("LPUSH", key, "x") }
            #expect(error?.serverErrorCode == "WRONGTYPE")
            #expect(error == .server(message: "WRONGTYPE Operation against a key holding the wrong kind of value"))
            let unknown = await #expect(throws: RedisError.self) { try await client.send("NOSUCHCOMMAND", "x") }
            guard case .server(let message)? = unknown else { throw TestFailure("expected a server error, got \(String(describing: unknown))") }
            #expect(message.hasPrefix("ERR unknown command"))
            // A typed helper against the wrong type also throws the server's message.
            await #expect(throws: RedisError.server(message: "WRONGTYPE Operation against a key holding the wrong kind of value")) {
                try await client.hget(key, field: "f")
            }
            // The connection stays usable after error replies.
            #expect(try await client.ping() == "PONG")
            try await client.del(key, list)
        }
    }

    @Test func pipelineOfTenThousandCommandsKeepsOrder() async throws {
        try await withClient(try Shared.client(poolSize: 2)) { client in
            let key = TestInfrastructure.uniqueName("redis_test_pipe")
            let count = 10_000
            var commands: [[RedisArgument]] = []
            commands.reserveCapacity(count)
            for i in 0..<count {
                switch i % 4 {
                case 0: commands.append(["INCR", .string(key)])
                case 1: commands.append(["HSET", .string(key + "_h"), .string("f\(i)"), .integer(i)])
                case 2: commands.append(["ECHO", .string("m\(i)")])
                default: commands.append(["HGET", .string(key + "_h"), .string("f\(i - 2)")])
                }
            }
            let results = try await client.pipeline(commands)
            #expect(results.count == count)
            var mismatches = 0
            for (i, result) in results.enumerated() {
                let value = try result.get()
                let expected: RESPValue
                switch i % 4 {
                case 0: expected = .integer(Int64(i / 4 + 1))
                case 1: expected = .integer(1)
                case 2: expected = .bulkString(Array("m\(i)".utf8))
                default: expected = .bulkString(Array("\(i - 2)".utf8))
                }
                if value != expected { mismatches += 1 }
            }
            #expect(mismatches == 0)
            try await client.del(key, key + "_h")
        }
    }

    @Test func pipelineErrorReplyDoesNotFailOthers() async throws {
        try await withClient(try Shared.client()) { client in
            let key = TestInfrastructure.uniqueName("redis_test_pipe_err")
            let results = try await client.pipeline([
                ["SET", .string(key), "v"],
                ["LPUSH", .string(key), "x"],
                ["GET", .string(key)],
                ["NOSUCHCOMMAND"],
                ["PING"],
            ])
            #expect(results.count == 5)
            #expect(try results[0].get() == .simpleString("OK"))
            #expect(throws: RedisError.self) { try results[1].get() }
            if case .failure(let error) = results[1] { #expect(error.serverErrorCode == "WRONGTYPE") }
            #expect(try results[2].get() == .bulkString(Array("v".utf8)))
            if case .failure(let error) = results[3] { #expect(error.serverErrorCode == "ERR") } else { Issue.record("expected error") }
            #expect(try results[4].get() == .simpleString("PONG"))
            #expect(try await client.pipeline([]).isEmpty)
            try await client.del(key)
        }
    }

    @Test func scriptLoadAndEvalSHA() async throws {
        try await withClient(try Shared.client()) { client in
            let source = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}"
            let local = RedisScript(source)
            let loaded = try await client.scriptLoad(source)
            #expect(loaded.sha1 == local.sha1)
            let reply = try await client.evalSHA(local, keys: ["k"], arguments: ["a", 21])
            #expect(reply == .array([.bulkString(Array("k".utf8)), .bulkString(Array("a".utf8)), .integer(42)]))
            // A script's own error is the server's message.
            let failing = RedisScript("return redis.error_reply('MYERR custom failure')")
            await #expect(throws: RedisError.server(message: "MYERR custom failure")) {
                try await client.evalSHA(failing)
            }
        }
    }

    @Test func concurrentCallersShareABoundedPool() async throws {
        try await withClient(try Shared.client(poolSize: 3)) { client in
            let key = TestInfrastructure.uniqueName("redis_test_pool")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<64 {
                    group.addTask { for _ in 0..<20 { try await client.send("INCR", key) } }
                }
                try await group.waitForAll()
            }
            #expect(try await client.getString(key) == "1280")
            try await client.del(key)
        }
        // A pool with no room for waiters refuses instead of queueing.
        var configuration = try RedisConfiguration(address: try TestInfrastructure.redisAddress())
        configuration.poolSize = 1
        configuration.maxWaitingRequests = 0
        try await withClient(RedisClient(configuration: configuration, logger: Shared.logger)) { client in
            let results = await withTaskGroup(of: Result<RESPValue, any Error>.self) { group in
                for _ in 0..<8 {
                    group.addTask { await Result { try await client.send("BLPOP", TestInfrastructure.uniqueName("none"), "0.2") } }
                }
                var results: [Result<RESPValue, any Error>] = []
                for await result in group { results.append(result) }
                return results
            }
            let exhausted = results.filter {
                if case .failure(let error as RedisError) = $0, case .poolExhausted = error { return true }
                return false
            }
            #expect(exhausted.count >= 1)
            #expect(results.contains { if case .success(.nullArray) = $0 { return true }; return false })
        }
    }

    @Test func commandTimeoutIsReportedAndTheConnectionRecovers() async throws {
        var configuration = try RedisConfiguration(address: try TestInfrastructure.redisAddress())
        configuration.poolSize = 1
        configuration.commandTimeout = .milliseconds(200)
        try await withClient(RedisClient(configuration: configuration, logger: Shared.logger)) { client in
            let error = await #expect(throws: RedisError.self) {
                try await client.send("BLPOP", TestInfrastructure.uniqueName("never"), 2)
            }
            guard case .timeout? = error else { throw TestFailure("expected .timeout, got \(String(describing: error))") }
            #expect(try await client.ping() == "PONG")
        }
    }

    @Test func withConnectionRunsATransactionOnOneConnection() async throws {
        try await withClient(try Shared.client()) { client in
            let key = TestInfrastructure.uniqueName("redis_test_multi")
            let exec = try await client.withConnection { connection in
                _ = try connection.send(["MULTI"])
                #expect(try connection.send(["INCR", .string(key)]) == .simpleString("QUEUED"))
                _ = try connection.send(["INCR", .string(key)])
                return try connection.send(["EXEC"])
            }
            #expect(exec == .array([.integer(1), .integer(2)]))
            try await client.del(key)
        }
    }

    @Test func shutdownClientRefusesCommands() async throws {
        let client = try Shared.client()
        #expect(try await client.ping() == "PONG")
        await client.shutdown()
        await #expect(throws: RedisError.shutdown) { try await client.ping() }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
