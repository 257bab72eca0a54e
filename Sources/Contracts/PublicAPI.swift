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

    public init(eventId: String, homeTeam: String, awayTeam: String, markets: [String], lastUpdate: Timestamp) {
        self.eventId = eventId
        self.homeTeam = homeTeam
        self.awayTeam = awayTeam
        self.markets = markets
        self.lastUpdate = lastUpdate
    }
}

/// `GET /v1/events`
public struct EventListResponse: Codable, Sendable, Hashable {
    public var events: [EventSummary]
    public init(events: [EventSummary]) { self.events = events }
}

public struct MarketSummary: Codable, Sendable, Hashable {
    public var market: String
    public var status: MarketStatus
    public var version: Int64
    public var updatedAt: Timestamp

    public init(market: String, status: MarketStatus, version: Int64, updatedAt: Timestamp) {
        self.market = market
        self.status = status
        self.version = version
        self.updatedAt = updatedAt
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
    public var status: MarketStatus
    public var version: Int64
    public var updatedAt: Timestamp

    public init(_ update: OddsUpdate) {
        market = update.market
        odds = update.odds
        status = update.status
        version = update.version
        updatedAt = update.updatedAt
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
}
