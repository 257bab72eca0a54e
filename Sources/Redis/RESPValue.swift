/// A RESP2 reply, copied out of hiredis' reply tree (no C memory is referenced after decoding).
public enum RESPValue: Sendable, Hashable {
    /// A status reply (`+OK`, `+PONG`, `+QUEUED`).
    case simpleString(String)
    /// An error reply (`-ERR ...`, `-NOSCRIPT ...`). The client's typed API turns it into
    /// `RedisError.server`; it only appears as a value inside arrays (e.g. `EXEC`) or in raw replies.
    case error(String)
    /// An integer reply (`:1`).
    case integer(Int64)
    /// A bulk string (`$3\r\nabc`); binary-safe bytes.
    case bulkString([UInt8])
    /// The null bulk string (`$-1`), e.g. `GET` of a missing key.
    case null
    /// A multi-bulk reply (`*2 ...`).
    case array([RESPValue])
    /// The null array (`*-1`), e.g. `BLPOP` timing out or an aborted `EXEC`.
    case nullArray

    /// Status reply or bulk string decoded as UTF-8 (lossy), integer as decimal text; nil otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// Bulk string bytes, or the UTF-8 bytes of a status reply; nil otherwise.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): return bytes
        case .simpleString(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// Integer reply, or a bulk string holding a decimal integer; nil otherwise.
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .bulkString(let bytes): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    /// Elements of an array reply; nil otherwise (including the null array).
    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// True for the null bulk string and the null array.
    public var isNull: Bool {
        switch self {
        case .null, .nullArray: return true
        default: return false
        }
    }
}

extension RESPValue: CustomStringConvertible {
    public var description: String {
        switch self {
        case .simpleString(let s): return "+\(s)"
        case .error(let e): return "-\(e)"
        case .integer(let i): return ":\(i)"
        case .bulkString(let b):
            let text = String(decoding: b.prefix(200), as: UTF8.self)
            return b.count > 200 ? "\"\(text)…\" (\(b.count) bytes)" : "\"\(text)\""
        case .null: return "(nil)"
        case .array(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .nullArray: return "(nil array)"
        }
    }
}

/// One argument of a Redis command. Binary-safe; strings are sent as their UTF-8 bytes.
public enum RedisArgument: Sendable, Hashable {
    case string(String)
    case bytes([UInt8])
    case integer(Int)
}

extension RedisArgument: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .integer(value) }
}

/// Values that can be passed as command arguments to the typed helpers.
public protocol RedisArgumentConvertible: Sendable {
    var redisArgument: RedisArgument { get }
}

extension RedisArgument: RedisArgumentConvertible {
    public var redisArgument: RedisArgument { self }
}
extension String: RedisArgumentConvertible {
    public var redisArgument: RedisArgument { .string(self) }
}
extension Substring: RedisArgumentConvertible {
    public var redisArgument: RedisArgument { .string(String(self)) }
}
extension Array: RedisArgumentConvertible where Element == UInt8 {
    public var redisArgument: RedisArgument { .bytes(self) }
}
extension ArraySlice: RedisArgumentConvertible where Element == UInt8 {
    public var redisArgument: RedisArgument { .bytes(Array(self)) }
}
extension Int: RedisArgumentConvertible {
    public var redisArgument: RedisArgument { .integer(self) }
}
extension Int64: RedisArgumentConvertible {
    public var redisArgument: RedisArgument { .integer(Int(self)) }
}

/// Encodes commands in the RESP2 request format (`*N\r\n$len\r\narg\r\n...`), the same bytes
/// `redisFormatCommandArgv` produces; a whole pipeline is encoded into one buffer and handed to
/// hiredis with a single `redisAppendFormattedCommand`.
struct RESPCommandEncoder {
    var buffer: [UInt8] = []

    init(reservingCapacity capacity: Int = 0) {
        buffer.reserveCapacity(capacity)
    }

    mutating func reset() { buffer.removeAll(keepingCapacity: true) }

    mutating func append(_ command: [RedisArgument]) {
        buffer.append(UInt8(ascii: "*"))
        appendDecimal(command.count)
        appendCRLF()
        for argument in command {
            switch argument {
            case .string(var s):
                let count = s.utf8.count
                appendLength(count)
                s.withUTF8 { buffer.append(contentsOf: $0) }
            case .bytes(let b):
                appendLength(b.count)
                buffer.append(contentsOf: b)
            case .integer(let i):
                var digits = DecimalDigits(i)
                appendLength(digits.count)
                digits.withBytes { buffer.append(contentsOf: $0) }
            }
            appendCRLF()
        }
    }

    private mutating func appendLength(_ length: Int) {
        buffer.append(UInt8(ascii: "$"))
        appendDecimal(length)
        appendCRLF()
    }

    private mutating func appendCRLF() {
        buffer.append(13)
        buffer.append(10)
    }

    private mutating func appendDecimal(_ value: Int) {
        var digits = DecimalDigits(value)
        digits.withBytes { buffer.append(contentsOf: $0) }
    }
}

/// Decimal text of an integer without allocating a String.
private struct DecimalDigits {
    private var storage: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes ≥ 20 digits + sign
    private var start = 24

    init(_ value: Int) {
        var magnitude = value.magnitude
        var buffer: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let first = withUnsafeMutableBytes(of: &buffer) { raw in
            var index = 24
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                index -= 1
                raw[index] = UInt8(ascii: "-")
            }
            return index
        }
        storage = buffer
        start = first
    }

    var count: Int { 24 - start }

    mutating func withBytes(_ body: (UnsafeRawBufferPointer) -> Void) {
        let start = self.start
        withUnsafeBytes(of: &storage) { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[start..<24]))
        }
    }
}
