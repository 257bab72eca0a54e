/// Typed helpers. Each one is a single command on one pooled connection; error replies are
/// thrown as `RedisError.server(message:)`, replies of an unexpected shape as
/// `RedisError.unexpectedReply`.
extension RedisClient {
    /// `PING` → `"PONG"`.
    @discardableResult
    public func ping() async throws -> String {
        let reply = try await send(command: ["PING"])
        guard let text = reply.string else { throw RedisError.unexpectedReply(command: "PING", reply: reply.description) }
        return text
    }

    /// `GET key` → the value's bytes, nil when the key does not exist.
    public func get(_ key: String) async throws -> [UInt8]? {
        try Self.optionalBytes(try await send(command: ["GET", .string(key)]), command: "GET")
    }

    /// `GET key` decoded as UTF-8.
    public func getString(_ key: String) async throws -> String? {
        try await get(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `SET key value [EX seconds]`.
    public func set(_ key: String, to value: some RedisArgumentConvertible, expireSeconds: Int? = nil) async throws {
        var command: [RedisArgument] = ["SET", .string(key), value.redisArgument]
        if let expireSeconds { command += ["EX", .integer(expireSeconds)] }
        let reply = try await send(command: command)
        guard case .simpleString = reply else { throw RedisError.unexpectedReply(command: "SET", reply: reply.description) }
    }

    /// `DEL key...` → number of keys removed.
    @discardableResult
    public func del(_ keys: String...) async throws -> Int {
        try await del(keys)
    }

    /// `DEL keys` → number of keys removed.
    @discardableResult
    public func del(_ keys: [String]) async throws -> Int {
        try Self.integer(try await send(command: ["DEL"] + keys.map { .string($0) }), command: "DEL")
    }

    /// `EXPIRE key seconds` → true if the timeout was set (false: no such key).
    @discardableResult
    public func expire(_ key: String, seconds: Int) async throws -> Bool {
        try Self.integer(try await send(command: ["EXPIRE", .string(key), .integer(seconds)]), command: "EXPIRE") == 1
    }

    /// `TTL key` → seconds to live, -1 without expiry, -2 when the key does not exist.
    public func ttl(_ key: String) async throws -> Int {
        try Self.integer(try await send(command: ["TTL", .string(key)]), command: "TTL")
    }

    /// `HSET key field value` → 1 if the field is new, 0 if it was updated.
    @discardableResult
    public func hset(_ key: String, field: String, to value: some RedisArgumentConvertible) async throws -> Int {
        try Self.integer(try await send(command: ["HSET", .string(key), .string(field), value.redisArgument]), command: "HSET")
    }

    /// `HSET key field value [field value ...]` → number of new fields.
    @discardableResult
    public func hset(_ key: String, fields: [(String, any RedisArgumentConvertible)]) async throws -> Int {
        var command: [RedisArgument] = ["HSET", .string(key)]
        for (field, value) in fields { command += [.string(field), value.redisArgument] }
        return try Self.integer(try await send(command: command), command: "HSET")
    }

    /// `HGET key field` → bytes, nil when the key or field does not exist.
    public func hget(_ key: String, field: String) async throws -> [UInt8]? {
        try Self.optionalBytes(try await send(command: ["HGET", .string(key), .string(field)]), command: "HGET")
    }

    /// `HGET key field` decoded as UTF-8.
    public func hgetString(_ key: String, field: String) async throws -> String? {
        try await hget(key, field: field).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `HGETALL key` → field → bytes (empty for a missing key).
    public func hgetall(_ key: String) async throws -> [String: [UInt8]] {
        try Self.hashFields(try await send(command: ["HGETALL", .string(key)]))
    }

    /// Decodes an `HGETALL` reply (field, value, field, value, ...), e.g. one taken from a pipeline.
    public static func hashFields(_ reply: RESPValue) throws -> [String: [UInt8]] {
        guard case .array(let items) = reply, items.count % 2 == 0 else {
            throw RedisError.unexpectedReply(command: "HGETALL", reply: reply.description)
        }
        var result: [String: [UInt8]] = [:]
        result.reserveCapacity(items.count / 2)
        var index = 0
        while index < items.count {
            guard let field = items[index].string, let value = items[index + 1].bytes else {
                throw RedisError.unexpectedReply(command: "HGETALL", reply: reply.description)
            }
            result[field] = value
            index += 2
        }
        return result
    }

    /// `HGETALL key` with values decoded as UTF-8.
    public func hgetallStrings(_ key: String) async throws -> [String: String] {
        try await hgetall(key).mapValues { String(decoding: $0, as: UTF8.self) }
    }

    /// `PUBLISH channel message` → number of subscribers that received it.
    @discardableResult
    public func publish(_ message: some RedisArgumentConvertible, to channel: String) async throws -> Int {
        try Self.integer(try await send(command: ["PUBLISH", .string(channel), message.redisArgument]), command: "PUBLISH")
    }

    /// `SCRIPT LOAD source` → a script with the server-computed SHA-1.
    public func scriptLoad(_ source: String) async throws -> RedisScript {
        let reply = try await send(command: ["SCRIPT", "LOAD", .string(source)])
        guard let sha = reply.string, sha.utf8.count == 40 else {
            throw RedisError.unexpectedReply(command: "SCRIPT LOAD", reply: reply.description)
        }
        return RedisScript(source: source, sha1: sha)
    }

    /// `EVALSHA sha numkeys keys... args...`; on `NOSCRIPT` the same connection sends `EVAL` with
    /// the source (which runs it and caches it). A script's own error reply is thrown as `.server`.
    @discardableResult
    public func evalSHA(
        _ script: RedisScript,
        keys: [String] = [],
        arguments: [any RedisArgumentConvertible] = []
    ) async throws -> RESPValue {
        let tail: [RedisArgument] = [.integer(keys.count)] + keys.map { .string($0) } + arguments.map(\.redisArgument)
        return try await withConnection { connection in
            do {
                return try connection.send(["EVALSHA", .string(script.sha1)] + tail)
            } catch RedisError.server(let message) where message.hasPrefix("NOSCRIPT") {
                return try connection.send(["EVAL", .string(script.source)] + tail)
            }
        }
    }

    /// One script invocation of `evalSHA(_:invocations:)`.
    public struct ScriptInvocation: Sendable {
        public var keys: [String]
        public var arguments: [RedisArgument]
        public init(keys: [String], arguments: [any RedisArgumentConvertible]) {
            self.keys = keys
            self.arguments = arguments.map(\.redisArgument)
        }
    }

    /// Pipelines many `EVALSHA` calls of one script on one connection. If any of them hits
    /// `NOSCRIPT` (those were not executed), the script is loaded with `SCRIPT LOAD` and exactly
    /// those invocations are pipelined again, in order. One result per invocation.
    public func evalSHA(
        _ script: RedisScript,
        invocations: [ScriptInvocation]
    ) async throws -> [Result<RESPValue, RedisError>] {
        let commands: [[RedisArgument]] = invocations.map { invocation in
            ["EVALSHA", .string(script.sha1), .integer(invocation.keys.count)]
                + invocation.keys.map { .string($0) } + invocation.arguments
        }
        return try await withConnection { connection in
            var results = try connection.pipeline(commands)
            let missing = results.indices.filter { index in
                if case .failure(.server(let message)) = results[index] { return message.hasPrefix("NOSCRIPT") }
                return false
            }
            if !missing.isEmpty {
                _ = try connection.send(["SCRIPT", "LOAD", .string(script.source)])
                let retried = try connection.pipeline(missing.map { commands[$0] })
                for (index, result) in zip(missing, retried) { results[index] = result }
            }
            return results
        }
    }

    /// Runs `RedisScript.setIfNewerVersion`: stores `json` in `key`/`field` only if `version` is
    /// newer than the stored one's, and publishes `message` on `channel` when applied.
    /// Returns true when applied, false when stale or duplicate.
    public func setIfNewerVersion(
        key: String,
        field: String,
        version: Int64,
        json: some RedisArgumentConvertible,
        publish message: (channel: String, payload: any RedisArgumentConvertible)? = nil
    ) async throws -> Bool {
        var arguments: [any RedisArgumentConvertible] = [field, version, json]
        if let message { arguments += [message.channel, message.payload] }
        let reply = try await evalSHA(.setIfNewerVersion, keys: [key], arguments: arguments)
        return try Self.integer(reply, command: "EVALSHA setIfNewerVersion") == 1
    }

    static func integer(_ reply: RESPValue, command: String) throws -> Int {
        guard case .integer(let value) = reply else { throw RedisError.unexpectedReply(command: command, reply: reply.description) }
        return Int(value)
    }

    static func optionalBytes(_ reply: RESPValue, command: String) throws -> [UInt8]? {
        switch reply {
        case .bulkString(let bytes): return bytes
        case .null: return nil
        default: throw RedisError.unexpectedReply(command: command, reply: reply.description)
        }
    }
}
