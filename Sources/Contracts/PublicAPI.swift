import Foundation

// Public REST types of odds-service (camelCase JSON). Embedded OddsUpdate payloads keep the
// feed's snake_case shape so clients can treat them exactly like the supplier contract.

/// `{"error":{"code":"...","message":"..."}}` returned with every 4xx/5xx.
public struct APIErrorResponse: Codable, Sendable, Hashable {
    public struct Body: Codable, Sendable, Hashable {
        public var code: String
        public var message: String
    }
    public var error: Body

    public init(code: String, message: String) {
        error = Body(code: code, message: message)
    }
}

public struct EventSummary: Codable, Sendable, Hashable {
    public var eventId: String
    public var homeTeam: String
    public var awayTeam: String
    public var markets: [String]
    public var lastUpdate: Timestamp
    /// `suspended` (reason `feed_down`, since) while the feed of any of its markets is down,
    /// otherwise `open`. A market's own supplier suspension shows in its MarketSummary / MarketOdds.
    public var effectiveStatus: MarketStatus
    public var statusReason: StatusReason?
    public var statusSince: Timestamp?
    /// The feeds (`source`) of its markets: read-model side information, not encoded.
    public var sources: [String] = []

    enum CodingKeys: String, CodingKey {
        case eventId, homeTeam, awayTeam, markets, lastUpdate, effectiveStatus, statusReason, statusSince
    }

    public init(eventId: String, homeTeam: String, awayTeam: String, markets: [String], lastUpdate: Timestamp,
                sources: [String] = [], status: EffectiveStatus = .open) {
        self.eventId = eventId
        self.homeTeam = homeTeam
        self.awayTeam = awayTeam
        self.markets = markets
        self.lastUpdate = lastUpdate
        self.sources = sources
        effectiveStatus = status.status
        statusReason = status.reason
        statusSince = status.since
    }

    /// The same summary with the platform overlay applied to its feeds.
    public func withOverlay(_ overlay: [String: FeedStatus]) -> EventSummary {
        var copy = self
        let status = EffectiveStatus.ofEvent(feeds: sources, overlay: overlay)
        copy.effectiveStatus = status.status
        copy.statusReason = status.reason
        copy.statusSince = status.since
        return copy
    }
}

/// `GET /v1/events`
public struct EventListResponse: Codable, Sendable, Hashable {
    public var events: [EventSummary]
    public init(events: [EventSummary]) { self.events = events }
}

public struct MarketSummary: Codable, Sendable, Hashable {
    public var market: String
    /// The supplier's status, unchanged.
    public var status: MarketStatus
    public var version: Int64
    public var updatedAt: Timestamp
    /// Whether the market can be bet on: see `EffectiveStatus`.
    public var effectiveStatus: MarketStatus
    public var statusReason: StatusReason?
    public var statusSince: Timestamp?

    public init(market: String, status: MarketStatus, version: Int64, updatedAt: Timestamp,
                effective: EffectiveStatus? = nil) {
        self.market = market
        self.status = status
        self.version = version
        self.updatedAt = updatedAt
        let effective = effective ?? EffectiveStatus(supplier: status)
        effectiveStatus = effective.status
        statusReason = effective.reason
        statusSince = effective.since
    }

    public init(_ update: OddsUpdate, overlay: [String: FeedStatus] = [:]) {
        self.init(market: update.market, status: update.status, version: update.version, updatedAt: update.updatedAt,
                  effective: EffectiveStatus.of(update, overlay: overlay))
    }
}

/// `GET /v1/events/{id}/markets`
public struct MarketListResponse: Codable, Sendable, Hashable {
    public var eventId: String
    public var markets: [MarketSummary]
    public init(eventId: String, markets: [MarketSummary]) {
        self.eventId = eventId
        self.markets = markets
    }
}

public struct MarketOdds: Codable, Sendable, Hashable {
    public var market: String
    public var odds: [String: Double]
    /// The supplier's status, unchanged.
    public var status: MarketStatus
    public var version: Int64
    public var updatedAt: Timestamp
    /// Whether the market can be bet on: see `EffectiveStatus`.
    public var effectiveStatus: MarketStatus
    public var statusReason: StatusReason?
    public var statusSince: Timestamp?

    public init(_ update: OddsUpdate, overlay: [String: FeedStatus] = [:]) {
        market = update.market
        odds = update.odds
        status = update.status
        version = update.version
        updatedAt = update.updatedAt
        let effective = EffectiveStatus.of(update, overlay: overlay)
        effectiveStatus = effective.status
        statusReason = effective.reason
        statusSince = effective.since
    }
}

/// `GET /v1/events/{id}/odds`
public struct EventOddsResponse: Codable, Sendable, Hashable {
    public var eventId: String
    public var homeTeam: String
    public var awayTeam: String
    public var markets: [MarketOdds]

    public init(eventId: String, homeTeam: String, awayTeam: String, markets: [MarketOdds]) {
        self.eventId = eventId
        self.homeTeam = homeTeam
        self.awayTeam = awayTeam
        self.markets = markets
    }
}

public struct HistoryEntry: Codable, Sendable, Hashable {
    public var version: Int64
    public var odds: [String: Double]
    public var status: MarketStatus
    public var updatedAt: Timestamp
    /// When the processor applied this version.
    public var appliedAt: Timestamp

    public init(version: Int64, odds: [String: Double], status: MarketStatus, updatedAt: Timestamp, appliedAt: Timestamp) {
        self.version = version
        self.odds = odds
        self.status = status
        self.updatedAt = updatedAt
        self.appliedAt = appliedAt
    }
}

/// `GET /v1/events/{id}/odds/history?market=&limit=` (newest first)
public struct OddsHistoryResponse: Codable, Sendable, Hashable {
    public var eventId: String
    public var market: String
    public var history: [HistoryEntry]

    public init(eventId: String, market: String, history: [HistoryEntry]) {
        self.eventId = eventId
        self.market = market
        self.history = history
    }
}

/// Pub/sub message on `odds_updates_broadcast`.
public struct BroadcastMessage: Codable, Sendable, Hashable {
    public var eventId: String
    public var payload: OddsUpdate

    public init(payload: OddsUpdate) {
        eventId = payload.eventId
        self.payload = payload
    }

    /// The message's JSON around a payload already written by `OddsUpdate.canonicalJSON()`: the
    /// bytes `ContractCoding.encoder` gives for it, without encoding the payload twice.
    public static func canonicalJSON(eventId: String, payloadJSON: [UInt8]) -> [UInt8] {
        var writer = JSONTextWriter(capacity: payloadJSON.count + eventId.utf8.count + 32)
        writer.raw(#"{"eventId":"#)
        writer.quoted(eventId)
        writer.raw(#","payload":"#)
        writer.json(payloadJSON)
        writer.raw("}")
        return writer.bytes
    }

    public struct Undecodable: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Reads a message of our own processor: the same fields and types `Decodable` requires,
    /// with `JSONParser` instead of `JSONDecoder`, which was 14 % of odds-service's CPU at
    /// 10,000 updates/s (the generic `Codable` machinery, per message). Trusted input: the
    /// contract's rules were checked at ingest; only the shape is checked here.
    public static func parse(_ bytes: [UInt8]) throws(Undecodable) -> BroadcastMessage {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw Undecodable(description: "not JSON: \(error)")
        }
        guard case .object(let fields) = document else { throw Undecodable(description: "not a JSON object") }
        guard case .string(let eventId)? = fields["eventId"] else { throw Undecodable(description: "eventId: expected a string") }
        guard let payload = fields["payload"] else { throw Undecodable(description: "payload: missing") }
        var message = BroadcastMessage(payload: try OddsUpdate(trusted: payload))
        message.eventId = eventId
        return message
    }
}

extension OddsUpdate {
    /// An OddsUpdate from a parsed document of a trusted source: what `init(from:)` accepts
    /// (`status` may be absent: open), nothing more is checked.
    public init(trusted value: JSONValue) throws(BroadcastMessage.Undecodable) {
        guard case .object(let fields) = value else { throw .init(description: "payload: expected an object") }
        func string(_ key: CodingKeys) throws(BroadcastMessage.Undecodable) -> String {
            guard case .string(let text)? = fields[key.rawValue] else { throw .init(description: "\(key.rawValue): expected a string") }
            return text
        }
        guard case .object(let selections)? = fields[CodingKeys.odds.rawValue] else { throw .init(description: "odds: expected an object") }
        var odds: [String: Double] = [:]
        odds.reserveCapacity(selections.count)
        for (name, price) in selections {
            guard case .number(let number) = price else { throw .init(description: "odds.\(name): expected a number") }
            odds[name] = number.value
        }
        var status = MarketStatus.open
        switch fields[CodingKeys.status.rawValue] {
        case nil, .null?: break
        case .string(let text)?:
            guard let known = MarketStatus(rawValue: text) else { throw .init(description: "status: unknown value \(text)") }
            status = known
        default: throw .init(description: "status: expected a string")
        }
        guard let updatedAt = Timestamp(rfc3339: try string(.updatedAt)) else { throw .init(description: "updated_at: expected an RFC 3339 timestamp") }
        // The parser's integer goes through Double (exact up to 2^53); the text covers the rest.
        guard case .number(let version)? = fields[CodingKeys.version.rawValue], let integer = version.integerValue ?? Int64(version.text) else {
            throw .init(description: "version: expected an integer")
        }
        self.init(eventId: try string(.eventId), homeTeam: try string(.homeTeam), awayTeam: try string(.awayTeam),
                  market: try string(.market), odds: odds, status: status, updatedAt: updatedAt,
                  source: try string(.source), version: integer)
    }
}

/// Why a market (or an event) is not open.
public enum StatusReason: String, Codable, Sendable, Hashable, CaseIterable {
    /// The platform suspended it: its feed is down (`FeedStatus` overlay suspended).
    case feedDown = "feed_down"
    /// The supplier itself sent `status: suspended`.
    case supplier
}

/// What a client may do with a market right now, and why. The rule (LIVENESS contract):
/// while the overlay of the market's feed (its `source`) is suspended, the market is
/// `suspended` with reason `feed_down` since the overlay's `since`, whatever the supplier last
/// said; otherwise it is the supplier's own status (`suspended` with reason `supplier`, or
/// `open` with no reason). Pure, so REST, snapshots and clients share one rule.
public struct EffectiveStatus: Sendable, Hashable {
    public var status: MarketStatus
    public var reason: StatusReason?
    /// Only for `feed_down`: when the feed went down.
    public var since: Timestamp?

    public init(status: MarketStatus, reason: StatusReason?, since: Timestamp?) {
        self.status = status
        self.reason = reason
        self.since = since
    }

    public static let open = EffectiveStatus(status: .open, reason: nil, since: nil)

    /// The supplier's status alone (no overlay).
    public init(supplier status: MarketStatus) {
        self = status == .suspended ? EffectiveStatus(status: .suspended, reason: .supplier, since: nil) : .open
    }

    public static func feedDown(since: Timestamp) -> EffectiveStatus {
        EffectiveStatus(status: .suspended, reason: .feedDown, since: since)
    }

    /// The effective status of one market. `overlay` maps a feed id to its `FeedStatus`.
    public static func of(_ update: OddsUpdate, overlay: [String: FeedStatus]) -> EffectiveStatus {
        if let feed = overlay[update.source], feed.isSuspended { return .feedDown(since: feed.since) }
        return EffectiveStatus(supplier: update.status)
    }

    /// The platform part of an event's status: `feed_down` while any of `feeds` is suspended
    /// (since the earliest of their suspensions), else `open`.
    public static func ofEvent(feeds: some Sequence<String>, overlay: [String: FeedStatus]) -> EffectiveStatus {
        var since: Timestamp?
        for feed in feeds {
            guard let status = overlay[feed], status.isSuspended else { continue }
            since = min(since ?? status.since, status.since)
        }
        return since.map { .feedDown(since: $0) } ?? .open
    }
}
