/// A Lua script: its source and SHA-1 digest. The digest is computed locally (identical to what
/// `SCRIPT LOAD` returns), so `EVALSHA` can be sent right away; when the server does not know the
/// script (`NOSCRIPT`, e.g. after a restart or `SCRIPT FLUSH`) the client falls back to `EVAL`,
/// which runs it and caches it again.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    /// Lower-case hex SHA-1 of `source`.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = SHA1.hexDigest(Array(source.utf8))
    }

    init(source: String, sha1: String) {
        self.source = source
        self.sha1 = sha1
    }
}

extension RedisScript {
    /// Stores a JSON document in a hash field only if its `version` is newer than the stored one's,
    /// atomically, and optionally publishes a message when it was applied.
    ///
    /// - KEYS[1]: the hash (e.g. `odds:current:{event_id}`)
    /// - ARGV[1]: the field (e.g. the market), ARGV[2]: the new version (integer),
    ///   ARGV[3]: the JSON value, which must carry the same `"version"`,
    ///   ARGV[4] (optional): a pub/sub channel, ARGV[5]: the message to publish on it if applied.
    /// - Returns 1 when stored (and published), 0 when the stored version is the same or newer
    ///   (stale or duplicate). The stored version is read from the stored JSON with `cjson`, so
    ///   the hash keeps exactly one field per market; a stored value that is not JSON or has no
    ///   numeric `version` is overwritten.
    ///
    /// Retrying it is safe (idempotent): a replay of an applied version returns 0 and publishes nothing.
    public static let setIfNewerVersion = RedisScript("""
        local newVersion = tonumber(ARGV[2])
        if newVersion == nil then
          return redis.error_reply('ERR version must be a number')
        end
        local current = redis.call('HGET', KEYS[1], ARGV[1])
        if current then
          local ok, decoded = pcall(cjson.decode, current)
          if ok and type(decoded) == 'table' and type(decoded['version']) == 'number' then
            if decoded['version'] >= newVersion then
              return 0
            end
          end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
        if ARGV[4] and ARGV[4] ~= '' then
          redis.call('PUBLISH', ARGV[4], ARGV[5] or '')
        end
        return 1
        """)
}
