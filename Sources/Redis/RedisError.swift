/// Errors of the Redis layer.
public enum RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Redis answered with an error reply; `message` is the server's text, e.g.
    /// `"WRONGTYPE Operation against a key holding the wrong kind of value"`.
    case server(message: String)
    /// The connection failed (connect refused, reset, EOF, protocol error); `message` is hiredis'
    /// `errstr`. The command may or may not have been executed by the server.
    case connection(message: String)
    /// No reply within the command timeout (or no connection within the connect timeout).
    /// Like `.connection`, the command may or may not have been executed.
    case timeout(message: String)
    /// The address or URL could not be parsed.
    case invalidAddress(String)
    /// A reply had an unexpected shape for the typed helper that received it.
    case unexpectedReply(command: String, reply: String)
    /// The client or subscriber was shut down.
    case shutdown
    /// Too many callers are already waiting for a pooled connection
    /// (`RedisConfiguration.maxWaitingRequests`).
    case poolExhausted(waiting: Int)

    public var description: String {
        switch self {
        case .server(let message): return "redis error reply: \(message)"
        case .connection(let message): return "redis connection error: \(message)"
        case .timeout(let message): return "redis timeout: \(message)"
        case .invalidAddress(let reason): return "invalid redis address: \(reason)"
        case .unexpectedReply(let command, let reply): return "unexpected reply to \(command): \(reply)"
        case .shutdown: return "redis client is shut down"
        case .poolExhausted(let waiting): return "redis pool exhausted: \(waiting) callers already waiting for a connection"
        }
    }

    /// The error code of a server error reply (its first word, e.g. `NOSCRIPT`, `WRONGTYPE`).
    public var serverErrorCode: String? {
        guard case .server(let message) = self else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    /// True when the error is about the transport (connection lost, timeout), i.e. retrying on a
    /// fresh connection may succeed.
    public var isConnectionError: Bool {
        switch self {
        case .connection, .timeout: return true
        default: return false
        }
    }
}
