import CHiredis

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns one blocking hiredis `redisContext`; freed in `deinit`.
///
/// Not thread-safe: every use must come from one thread at a time (the owners guarantee this:
/// `RedisConnection` is checked out exclusively from the pool, the subscriber context lives on
/// its reader thread).
final class HiredisContext {
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects with `connectTimeout`, then applies `commandTimeout` to socket reads/writes and
    /// enables TCP keep-alive. Throws `.connection`/`.timeout` with hiredis' `errstr`.
    init(host: String, port: Int, connectTimeout: Duration, commandTimeout: Duration) throws(RedisError) {
        guard let context = redisConnectWithTimeout(host, Int32(port), timeval(connectTimeout)) else {
            throw .connection(message: "cannot allocate redis context")
        }
        if context.pointee.err != 0 {
            let error = Self.error(of: context)
            redisFree(context)
            throw error
        }
        self.context = context
        // Replace the reply-object functions so a null array (`*-1`) can be told from a null bulk string.
        context.pointee.reader.pointee.fn = nullArrayAwareReplyFunctions
        if redisSetTimeout(context, timeval(commandTimeout)) != REDIS_OK {
            throw currentError()
        }
        _ = redisEnableKeepAlive(context)
    }

    deinit {
        redisFree(context)
    }

    var fileDescriptor: Int32 { context.pointee.fd }
    var hasError: Bool { context.pointee.err != 0 }

    /// True when the socket is readable although no reply is outstanding: the server closed the
    /// connection (restart, `timeout` config, `CLIENT KILL`) or sent something unsolicited. Such a
    /// context must not be used; checked before each command so that nothing is sent on it.
    var isReadableWhileIdle: Bool {
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) != 0
    }

    /// Appends already RESP-encoded commands to the output buffer (nothing is sent yet).
    func appendFormatted(_ bytes: [UInt8]) throws(RedisError) {
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                redisAppendFormattedCommand(context, $0.baseAddress, $0.count)
            }
        }
        if status != REDIS_OK { throw currentError() }
    }

    /// Blocking: flushes pending output if needed and waits for the next reply.
    func nextReply() throws(RedisError) -> RESPValue {
        var reply: UnsafeMutableRawPointer?
        if redisGetReply(context, &reply) != REDIS_OK || reply == nil {
            throw currentError()
        }
        defer { freeReplyObject(reply) }
        return decodeReply(reply!.assumingMemoryBound(to: redisReply.self))
    }

    /// Blocking write of the whole output buffer.
    func flush() throws(RedisError) {
        var done: Int32 = 0
        repeat {
            if redisBufferWrite(context, &done) != REDIS_OK { throw currentError() }
        } while done == 0
    }

    /// Returns an already-buffered reply, or waits up to `timeoutMilliseconds` for the socket to
    /// become readable, reads once and returns a reply if a complete one arrived. Nil means
    /// "nothing yet" (the poll timed out or only part of a reply arrived). Never blocks longer
    /// than the timeout, and a timeout does not break the context (unlike SO_RCVTIMEO in hiredis).
    func pollReply(timeoutMilliseconds: Int32) throws(RedisError) -> RESPValue? {
        if let value = try bufferedReply() { return value }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready == 0 { return nil }
        if ready < 0 {
            if errno == EINTR { return nil }
            throw .connection(message: "poll: \(String(cString: strerror(errno)))")
        }
        if redisBufferRead(context) != REDIS_OK { throw currentError() }
        return try bufferedReply()
    }

    private func bufferedReply() throws(RedisError) -> RESPValue? {
        var reply: UnsafeMutableRawPointer?
        if redisGetReplyFromReader(context, &reply) != REDIS_OK { throw currentError() }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return decodeReply(reply.assumingMemoryBound(to: redisReply.self))
    }

    /// The context's error as a `RedisError` (hiredis' errstr; socket timeouts become `.timeout`).
    func currentError() -> RedisError {
        Self.error(of: context)
    }

    private static func error(of context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let savedErrno = errno
        let message = withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        let code = context.pointee.err
        if code == REDIS_ERR_IO && (savedErrno == EAGAIN || savedErrno == EWOULDBLOCK || savedErrno == ETIMEDOUT || savedErrno == EINPROGRESS) {
            return .timeout(message: message.isEmpty ? "operation timed out" : message)
        }
        if code == 0 {
            return .connection(message: "unknown hiredis failure")
        }
        return .connection(message: message.isEmpty ? "hiredis error \(code)" : message)
    }
}

private func timeval(_ duration: Duration) -> timeval {
    let (seconds, attoseconds) = duration.components
    var value = Glibc.timeval()
    value.tv_sec = Int(max(0, seconds))
    value.tv_usec = Int(max(0, attoseconds / 1_000_000_000_000))
    if value.tv_sec == 0 && value.tv_usec == 0 { value.tv_usec = 1000 }
    return value
}

/// Copies a hiredis reply tree into a `RESPValue` (must run before `freeReplyObject`).
private func decodeReply(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
    let r = reply.pointee
    switch r.type {
    case REDIS_REPLY_STRING:
        guard let str = r.str else { return .bulkString([]) }
        return .bulkString(Array(UnsafeRawBufferPointer(start: str, count: r.len)))
    case REDIS_REPLY_STATUS:
        guard let str = r.str else { return .simpleString("") }
        return .simpleString(String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self))
    case REDIS_REPLY_ERROR:
        guard let str = r.str else { return .error("") }
        return .error(String(decoding: UnsafeRawBufferPointer(start: str, count: r.len), as: UTF8.self))
    case REDIS_REPLY_INTEGER:
        return .integer(Int64(r.integer))
    case REDIS_REPLY_NIL:
        return r.integer == nullArrayMarker ? .nullArray : .null
    case REDIS_REPLY_ARRAY:
        var values: [RESPValue] = []
        values.reserveCapacity(r.elements)
        for index in 0..<r.elements {
            if let element = r.element[index] {
                values.append(decodeReply(element))
            } else {
                values.append(.null)
            }
        }
        return .array(values)
    default:
        return .error("unsupported reply type \(r.type)")
    }
}

// MARK: - Null array vs null bulk string
//
// hiredis 0.14 creates the same REDIS_REPLY_NIL object for `$-1` and `*-1`. Its reader calls
// `createNil(task)` with `task->type` set to REDIS_REPLY_ARRAY for the latter, so we wrap the
// default `createNil` and mark such objects in their (otherwise unused) `integer` field.

private let nullArrayMarker: Int64 = 0x6E756C6C  // "null"

/// hiredis' default reply-object functions, copied from a throwaway reader.
private let defaultReplyFunctions: redisReplyObjectFunctions = {
    guard let reader = redisReaderCreate() else { fatalError("redisReaderCreate failed") }
    defer { redisReaderFree(reader) }
    return reader.pointee.fn.pointee
}()

/// Lives for the whole process; readers keep a pointer to it and never free it.
nonisolated(unsafe) private let nullArrayAwareReplyFunctions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
    let functions = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
    var copy = defaultReplyFunctions
    copy.createNil = { task in
        let object = defaultReplyFunctions.createNil(task)
        if let object, let task, task.pointee.type == REDIS_REPLY_ARRAY {
            object.assumingMemoryBound(to: redisReply.self).pointee.integer = nullArrayMarker
        }
        return object
    }
    functions.initialize(to: copy)
    return functions
}()
