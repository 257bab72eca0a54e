/// The supplier feed protocol `odds-feed/2` (contracts/feed-protocol.v2.schema.json): every frame
/// carries its position in the supplier's stream, so a client can resume after a crash.
public enum FeedProtocol {
    public static let name = "odds-feed/2"
    /// Query parameters of the feed's WebSocket URL.
    public static let afterParameter = "after"
    public static let startParameter = "start"
}

/// A position in the supplier's stream: `seq` within `epoch`. The epoch is the supplier's start
/// time in microseconds, so a restarted supplier (which has lost its history) has a larger one;
/// positions compare by epoch first, then seq.
public struct FeedPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let epoch: UInt64
    public let seq: UInt64

    public init(epoch: UInt64, seq: UInt64) {
        self.epoch = epoch
        self.seq = seq
    }

    /// `"E:N"`, the text form of query parameters and Kafka headers.
    public var description: String { "\(epoch):\(seq)" }

    /// Reads `"E:N"` (decimal digits only, epoch ≥ 1); nil for anything else.
    public init?(text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2,
              let epoch = Self.decimal(parts[0]), epoch >= 1,
              let seq = Self.decimal(parts[1]) else { return nil }
        self.init(epoch: epoch, seq: seq)
    }

    static func decimal(_ text: some StringProtocol) -> UInt64? {
        guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        return UInt64(text)
    }

    public static func < (lhs: FeedPosition, rhs: FeedPosition) -> Bool {
        (lhs.epoch, lhs.seq) < (rhs.epoch, rhs.seq)
    }
}

/// How a client asks to start: resume after a position, a full snapshot, or live frames only.
public enum FeedStart: Sendable, Hashable, CustomStringConvertible {
    case after(FeedPosition)
    case snapshot
    case live

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// From the URL's query parameters (already percent-decoded); nothing given means snapshot.
    public static func parse(after: String?, start: String?) throws(Invalid) -> FeedStart {
        switch (after, start) {
        case (nil, nil), (nil, "snapshot"?):
            return .snapshot
        case (nil, "live"?):
            return .live
        case (nil, let other?):
            throw Invalid(description: "start must be snapshot or live, got \"\(other.prefix(40))\"")
        case (let text?, nil):
            guard let position = FeedPosition(text: text) else {
                throw Invalid(description: "after must be <epoch>:<seq> (decimal integers, epoch ≥ 1), got \"\(text.prefix(60))\"")
            }
            return .after(position)
        case (_?, _?):
            throw Invalid(description: "give either after or start, not both")
        }
    }

    /// The query string that asks for this start (`after=E:N`, `start=live`, `start=snapshot`).
    public var query: String {
        switch self {
        case .after(let position): "\(FeedProtocol.afterParameter)=\(position)"
        case .snapshot: "\(FeedProtocol.startParameter)=snapshot"
        case .live: "\(FeedProtocol.startParameter)=live"
        }
    }

    public var description: String { query }
}

/// What the supplier does for a new client, announced by its `hello` frame.
public enum FeedRecovery: String, Sendable, Hashable, CaseIterable {
    /// Stream frames after the asked position follow, then live ones.
    case replay
    /// A full snapshot follows, then live frames.
    case snapshot
    /// Live frames only.
    case live
}

/// Why a snapshot is sent instead of a replay.
public enum SnapshotReason: String, Sendable, Hashable, CaseIterable {
    /// The client asked for one (or gave no position).
    case requested
    /// The position belongs to another epoch (a supplier restart, or a foreign position).
    case unknownEpoch = "unknown_epoch"
    /// The position is older than the replay log's first frame.
    case tooOld = "too_old"
    /// The position is beyond the stream's latest frame.
    case ahead
}

/// One frame of the supplier feed, as a client reads it.
public enum FeedFrame: Sendable, Equatable {
    case hello(FeedHello)
    /// A stream frame, live or replayed; `payload` is the OddsUpdate text exactly as sent (it
    /// may break the contract: fault injection).
    case odds(position: FeedPosition, payload: [UInt8])
    case snapshotStart(position: FeedPosition, markets: Int)
    /// One market's state as of `position` (the snapshot point).
    case snapshot(position: FeedPosition, index: Int, markets: Int, payload: [UInt8])
    case snapshotComplete(position: FeedPosition, markets: Int)
    /// Sent when the supplier has had nothing else to send for a while; `position` is its latest.
    case alive(position: FeedPosition)

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Reads one frame; throws for anything the protocol does not allow.
    public static func parse(_ bytes: some Collection<UInt8>) throws(Invalid) -> FeedFrame {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw Invalid(description: "not JSON: \(error)")
        }
        guard case .object(let fields) = document else { throw Invalid(description: "a feed frame must be a JSON object") }
        var reader = FieldReader(fields: fields)
        let type = try reader.string("type")
        let frame: FeedFrame
        switch type {
        case "odds":
            let position = try reader.position(minimumSeq: 1)
            frame = .odds(position: position, payload: Array(try reader.string("payload").utf8))
        case "snapshot_start":
            frame = .snapshotStart(position: try reader.position(minimumSeq: 0), markets: try reader.integer("markets", minimum: 0))
        case "snapshot":
            let position = try reader.position(minimumSeq: 0)
            let markets = try reader.integer("markets", minimum: 1)
            let index = try reader.integer("index", minimum: 1)
            guard index <= markets else { throw Invalid(description: "index \(index) is above markets \(markets)") }
            frame = .snapshot(position: position, index: index, markets: markets, payload: Array(try reader.string("payload").utf8))
        case "snapshot_complete":
            frame = .snapshotComplete(position: try reader.position(minimumSeq: 0), markets: try reader.integer("markets", minimum: 0))
        case "hello":
            frame = .hello(try FeedHello(reading: &reader))
        case "alive":
            frame = .alive(position: try reader.position(minimumSeq: 0))
        default:
            throw Invalid(description: "unknown frame type \"\(type.prefix(40))\"")
        }
        if let extra = reader.unread.first {
            throw Invalid(description: "unknown field \"\(extra.prefix(40))\" in a \(type) frame")
        }
        return frame
    }

    /// The frame's stream position (for hello: the stream's latest one at connect).
    public var position: FeedPosition {
        switch self {
        case .hello(let hello): hello.position
        case .odds(let position, _), .snapshotStart(let position, _), .snapshot(let position, _, _, _),
             .snapshotComplete(let position, _), .alive(let position):
            position
        }
    }
}

/// The first frame of every connection: where the stream is and what comes before live frames.
public struct FeedHello: Sendable, Equatable {
    /// The stream's latest position when the client connected; live frames start after it.
    public let position: FeedPosition
    public let recovery: FeedRecovery
    public let reason: SnapshotReason?
    /// The position the client asked to resume after.
    public let after: FeedPosition?
    /// First seq still in the replay log (0 when it is empty).
    public let replayLogFirstSeq: UInt64?

    public init(position: FeedPosition, recovery: FeedRecovery, reason: SnapshotReason?, after: FeedPosition?, replayLogFirstSeq: UInt64?) {
        self.position = position
        self.recovery = recovery
        self.reason = reason
        self.after = after
        self.replayLogFirstSeq = replayLogFirstSeq
    }

    fileprivate init(reading reader: inout FieldReader) throws(FeedFrame.Invalid) {
        let protocolName = try reader.string("protocol")
        guard protocolName == FeedProtocol.name else {
            throw FeedFrame.Invalid(description: "protocol \"\(protocolName.prefix(40))\" is not \(FeedProtocol.name)")
        }
        position = try reader.position(minimumSeq: 0)
        let recoveryText = try reader.string("recovery")
        guard let recovery = FeedRecovery(rawValue: recoveryText) else {
            throw FeedFrame.Invalid(description: "unknown recovery \"\(recoveryText.prefix(40))\"")
        }
        self.recovery = recovery
        if let text = try reader.optionalString("reason") {
            guard let reason = SnapshotReason(rawValue: text) else {
                throw FeedFrame.Invalid(description: "unknown snapshot reason \"\(text.prefix(40))\"")
            }
            self.reason = reason
        } else {
            reason = nil
        }
        if let text = try reader.optionalString("after") {
            guard let after = FeedPosition(text: text) else { throw FeedFrame.Invalid(description: "after must be <epoch>:<seq>") }
            self.after = after
        } else {
            after = nil
        }
        replayLogFirstSeq = try reader.optionalInteger("replay_log_first_seq", minimum: 0).map { UInt64($0) }
        // `after` is there exactly when the client asked to resume; `reason` exactly for snapshots.
        switch (recovery, reason) {
        case (.replay, nil) where after != nil, (.live, nil) where after == nil,
             (.snapshot, .requested?) where after == nil:
            break
        case (.snapshot, let reason?) where reason != .requested && after != nil:
            break
        case (.snapshot, nil):
            throw FeedFrame.Invalid(description: "a snapshot hello must give its reason")
        case (.replay, _?), (.live, _?):
            throw FeedFrame.Invalid(description: "reason is for snapshot hellos only")
        default:
            throw FeedFrame.Invalid(description: "after must be given exactly when the client asked to resume (recovery \(recovery.rawValue))")
        }
    }
}

/// Reads named fields of a frame, remembering which ones were read (the rest are unknown).
private struct FieldReader {
    let fields: [String: JSONValue]
    private var read: Set<String> = []

    init(fields: [String: JSONValue]) {
        self.fields = fields
    }

    var unread: [String] { fields.keys.filter { !read.contains($0) }.sorted() }

    mutating func string(_ name: String) throws(FeedFrame.Invalid) -> String {
        guard let value = try optionalString(name) else { throw FeedFrame.Invalid(description: "missing field \(name)") }
        return value
    }

    mutating func optionalString(_ name: String) throws(FeedFrame.Invalid) -> String? {
        read.insert(name)
        guard let value = fields[name] else { return nil }
        guard case .string(let text) = value else { throw FeedFrame.Invalid(description: "\(name) must be a string, got \(value.typeName)") }
        return text
    }

    mutating func integer(_ name: String, minimum: Int64) throws(FeedFrame.Invalid) -> Int {
        guard let value = try optionalInteger(name, minimum: minimum) else { throw FeedFrame.Invalid(description: "missing field \(name)") }
        return value
    }

    mutating func optionalInteger(_ name: String, minimum: Int64) throws(FeedFrame.Invalid) -> Int? {
        read.insert(name)
        guard let value = fields[name] else { return nil }
        // Any integral number, as JSON Schema's "integer" (`42`, `4.2e1`).
        guard case .number(let number) = value, let integer = number.integerValue, number.decimalPlaces == 0 else {
            throw FeedFrame.Invalid(description: "\(name) must be an integer, got \(value.typeName == "number" ? "\(value)" : value.typeName)")
        }
        guard integer >= minimum else { throw FeedFrame.Invalid(description: "\(name) must be at least \(minimum), got \(integer)") }
        return Int(integer)
    }

    mutating func position(minimumSeq: Int64) throws(FeedFrame.Invalid) -> FeedPosition {
        let epoch = try integer("epoch", minimum: 1)
        let seq = try integer("seq", minimum: minimumSeq)
        return FeedPosition(epoch: UInt64(epoch), seq: UInt64(seq))
    }
}

/// Writes feed frames as JSON text by hand (the feed runs at up to 50,000 frames/s; JSONEncoder
/// would cost most of a core). Shared by the supplier and the tests.
public enum FeedFrameEncoder {
    public static func odds(position: FeedPosition, payload: String) -> String {
        var writer = JSONTextWriter(capacity: payload.utf8.count + payload.utf8.count / 4 + 64)
        writer.raw(#"{"type":"odds","epoch":"#)
        writer.integer(position.epoch)
        writer.raw(#","seq":"#)
        writer.integer(position.seq)
        writer.raw(#","payload":"#)
        writer.quoted(payload)
        writer.raw("}")
        return writer.text
    }

    public static func snapshotStart(position: FeedPosition, markets: Int) -> String {
        #"{"type":"snapshot_start","epoch":\#(position.epoch),"seq":\#(position.seq),"markets":\#(markets)}"#
    }

    public static func snapshot(position: FeedPosition, index: Int, markets: Int, payload: String) -> String {
        var writer = JSONTextWriter(capacity: payload.utf8.count + payload.utf8.count / 4 + 128)
        writer.raw(#"{"type":"snapshot","epoch":\#(position.epoch),"seq":\#(position.seq),"index":\#(index),"markets":\#(markets),"payload":"#)
        writer.quoted(payload)
        writer.raw("}")
        return writer.text
    }

    public static func alive(position: FeedPosition) -> String {
        #"{"type":"alive","epoch":\#(position.epoch),"seq":\#(position.seq)}"#
    }

    public static func snapshotComplete(position: FeedPosition, markets: Int) -> String {
        #"{"type":"snapshot_complete","epoch":\#(position.epoch),"seq":\#(position.seq),"markets":\#(markets)}"#
    }

    public static func hello(_ hello: FeedHello) -> String {
        var text = #"{"type":"hello","protocol":"\#(FeedProtocol.name)","epoch":\#(hello.position.epoch),"seq":\#(hello.position.seq),"recovery":"\#(hello.recovery.rawValue)""#
        if let reason = hello.reason { text += #","reason":"\#(reason.rawValue)""# }
        if let after = hello.after { text += #","after":"\#(after)""# }
        if let first = hello.replayLogFirstSeq { text += #","replay_log_first_seq":\#(first)"# }
        text += "}"
        return text
    }
}
