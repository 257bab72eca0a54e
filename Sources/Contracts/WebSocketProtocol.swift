import Foundation

/// A frame a subscriber sends on `/ws/odds`.
public enum ClientMessage: Sendable, Hashable {
    /// Subscribe to events; `versions` (market → last version seen) resumes: only newer markets are sent.
    case subscribe(eventIds: [String], versions: [String: Int64])
    case unsubscribe(eventIds: [String])
    case ping
}

/// Why a client frame was refused; sent back as an `error` frame, the connection stays open.
public struct ClientMessageError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: String
    public let message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }

    public static func badFrame(_ message: String) -> ClientMessageError { .init(code: "bad_frame", message: message) }
}

extension ClientMessage {
    public static let maxEventIdsPerFrame = 100

    /// Parses and checks a client text frame without trusting its shape.
    public static func parse(_ frame: some Collection<UInt8>) -> Result<ClientMessage, ClientMessageError> {
        let document: JSONValue
        do {
            document = try JSONParser.parse(frame)
        } catch {
            return .failure(.badFrame("frame is not valid JSON: \(error)"))
        }
        guard case .object(let fields) = document else {
            return .failure(.badFrame("frame must be a JSON object"))
        }
        guard case .string(let type)? = fields["type"] else {
            return .failure(.badFrame("frame needs a string field \"type\""))
        }
        switch type {
        case "ping":
            return .success(.ping)
        case "subscribe", "unsubscribe":
            var eventIds: [String] = []
            if let single = fields["eventId"] {
                guard case .string(let id) = single else { return .failure(.badFrame("eventId must be a string")) }
                eventIds.append(id)
            }
            if let many = fields["eventIds"] {
                guard case .array(let items) = many else { return .failure(.badFrame("eventIds must be an array of strings")) }
                for item in items {
                    guard case .string(let id) = item else { return .failure(.badFrame("eventIds must be an array of strings")) }
                    eventIds.append(id)
                }
            }
            guard !eventIds.isEmpty else { return .failure(.badFrame("\(type) needs eventId or eventIds")) }
            guard eventIds.count <= maxEventIdsPerFrame else {
                return .failure(.init(code: "too_many_events", message: "at most \(maxEventIdsPerFrame) event ids per frame"))
            }
            for id in eventIds where !OddsUpdateValidator.isToken(id, maxLength: OddsUpdateValidator.maxEventIdLength,
                                                                  allowed: OddsUpdateValidator.isEventIdByte) {
                return .failure(.init(code: "invalid_event_id", message: "invalid event id \(OddsUpdateValidator.quoted(id))"))
            }
            var uniqueIds: [String] = []
            for id in eventIds where !uniqueIds.contains(id) { uniqueIds.append(id) }
            if type == "unsubscribe" { return .success(.unsubscribe(eventIds: uniqueIds)) }
            var versions: [String: Int64] = [:]
            if let resume = fields["versions"] {
                guard case .object(let entries) = resume else {
                    return .failure(.badFrame("versions must be an object of market to version"))
                }
                for (market, value) in entries {
                    guard case .number(let number) = value, let version = number.integerValue, version >= 0 else {
                        return .failure(.badFrame("versions.\(market) must be a non-negative integer"))
                    }
                    versions[market] = version
                }
            }
            return .success(.subscribe(eventIds: uniqueIds, versions: versions))
        default:
            return .failure(.init(code: "unknown_type", message: "unknown message type \(OddsUpdateValidator.quoted(type))"))
        }
    }
}

/// The platform status of one followed event on `/ws/odds`: the `status` frame, and the
/// optional `status` of a snapshot taken while the event's feed is down. While
/// `effectiveStatus` is `suspended` (reason `feed_down`), every market of the event is
/// suspended whatever its last `status`; once `open` again, each market's own `status` applies.
public struct EventStatus: Codable, Sendable, Hashable {
    public var effectiveStatus: MarketStatus
    /// `feed_down` while suspended by the platform; nil (JSON null) when open.
    public var reason: StatusReason?
    /// When this state began (the feed overlay's `since`).
    public var since: Timestamp

    public init(effectiveStatus: MarketStatus, reason: StatusReason?, since: Timestamp) {
        self.effectiveStatus = effectiveStatus
        self.reason = reason
        self.since = since
    }

    public static func suspended(since: Timestamp) -> EventStatus {
        EventStatus(effectiveStatus: .suspended, reason: .feedDown, since: since)
    }

    public static func open(since: Timestamp) -> EventStatus {
        EventStatus(effectiveStatus: .open, reason: nil, since: since)
    }

    public var isSuspended: Bool { effectiveStatus == .suspended }

    /// The event's status from the overlay of its feeds: suspended while any of them is
    /// (since the earliest suspension), open since the newest reopening when every known feed
    /// is open, nil when the overlay knows none of them (open: nothing to say).
    public static func of(feeds: some Sequence<String>, overlay: [String: FeedStatus]) -> EventStatus? {
        var suspendedSince: Timestamp?
        var openSince: Timestamp?
        for feed in feeds {
            guard let status = overlay[feed] else { continue }
            if status.isSuspended {
                suspendedSince = min(suspendedSince ?? status.since, status.since)
            } else {
                openSince = max(openSince ?? status.since, status.since)
            }
        }
        if let suspendedSince { return .suspended(since: suspendedSince) }
        return openSince.map { .open(since: $0) }
    }

    enum CodingKeys: String, CodingKey { case effectiveStatus, reason, since }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        effectiveStatus = try container.decode(MarketStatus.self, forKey: .effectiveStatus)
        reason = try container.decodeIfPresent(StatusReason.self, forKey: .reason)
        since = try container.decode(Timestamp.self, forKey: .since)
    }

    /// `reason` is written as null when open (the frame always has the three members).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(effectiveStatus, forKey: .effectiveStatus)
        try container.encode(reason, forKey: .reason)
        try container.encode(since, forKey: .since)
    }
}

/// A frame odds-service sends on `/ws/odds`.
public enum ServerMessage: Sendable, Hashable {
    /// `status` is set when the event's feed was down when the snapshot was taken.
    case snapshot(eventId: String, markets: [OddsUpdate], status: EventStatus? = nil)
    case odds(eventId: String, payload: OddsUpdate)
    /// The platform status of a followed event changed (suspension by the platform, reopening).
    case status(eventId: String, status: EventStatus)
    case pong
    case heartbeat
    case error(code: String, message: String)
}

extension ServerMessage: Encodable {
    enum CodingKeys: String, CodingKey {
        case type, eventId, markets, payload, code, message, status, effectiveStatus, reason, since
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .snapshot(let eventId, let markets, let status):
            try container.encode("snapshot", forKey: .type)
            try container.encode(eventId, forKey: .eventId)
            try container.encode(markets, forKey: .markets)
            try container.encodeIfPresent(status, forKey: .status)
        case .odds(let eventId, let payload):
            try container.encode("odds", forKey: .type)
            try container.encode(eventId, forKey: .eventId)
            try container.encode(payload, forKey: .payload)
        case .status(let eventId, let status):
            try container.encode("status", forKey: .type)
            try container.encode(eventId, forKey: .eventId)
            try container.encode(status.effectiveStatus, forKey: .effectiveStatus)
            try container.encode(status.reason, forKey: .reason)  // null when open
            try container.encode(status.since, forKey: .since)
        case .pong:
            try container.encode("pong", forKey: .type)
        case .heartbeat:
            try container.encode("heartbeat", forKey: .type)
        case .error(let code, let message):
            try container.encode("error", forKey: .type)
            try container.encode(code, forKey: .code)
            try container.encode(message, forKey: .message)
        }
    }

    public func jsonString() -> String {
        String(decoding: (try? ContractCoding.encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

extension ServerMessage: Decodable {
    /// Decoding is for clients and tests (watchers, benchmarks, end-to-end checks).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "snapshot":
            self = .snapshot(eventId: try container.decode(String.self, forKey: .eventId),
                             markets: try container.decode([OddsUpdate].self, forKey: .markets),
                             status: try container.decodeIfPresent(EventStatus.self, forKey: .status))
        case "odds":
            self = .odds(eventId: try container.decode(String.self, forKey: .eventId),
                         payload: try container.decode(OddsUpdate.self, forKey: .payload))
        case "status":
            self = .status(eventId: try container.decode(String.self, forKey: .eventId), status: EventStatus(
                effectiveStatus: try container.decode(MarketStatus.self, forKey: .effectiveStatus),
                reason: try container.decodeIfPresent(StatusReason.self, forKey: .reason),
                since: try container.decode(Timestamp.self, forKey: .since)))
        case "pong": self = .pong
        case "heartbeat": self = .heartbeat
        case "error":
            self = .error(code: try container.decode(String.self, forKey: .code),
                          message: try container.decode(String.self, forKey: .message))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown type \(other)")
        }
    }
}
