import Foundation

/// Whether a market can be bet on right now.
public enum MarketStatus: String, Codable, Sendable, Hashable, CaseIterable {
    case open
    case suspended
}

/// One price change of one market of one event: the supplier feed frame, the Kafka value, the
/// Redis hash value and the WebSocket payload (contract OddsUpdate v1, snake_case JSON).
public struct OddsUpdate: Sendable, Hashable {
    public var eventId: String
    public var homeTeam: String
    public var awayTeam: String
    public var market: String
    /// Selection name → decimal price.
    public var odds: [String: Double]
    public var status: MarketStatus
    /// The supplier's time of the change.
    public var updatedAt: Timestamp
    public var source: String
    /// Strictly increasing per (eventId, market); the ordering key.
    public var version: Int64

    public init(
        eventId: String, homeTeam: String, awayTeam: String, market: String,
        odds: [String: Double], status: MarketStatus = .open, updatedAt: Timestamp,
        source: String, version: Int64
    ) {
        self.eventId = eventId
        self.homeTeam = homeTeam
        self.awayTeam = awayTeam
        self.market = market
        self.odds = odds
        self.status = status
        self.updatedAt = updatedAt
        self.source = source
        self.version = version
    }

    /// The identity whose versions must only move forward.
    public var marketKey: MarketKey { MarketKey(eventId: eventId, market: market) }

    /// True when `self` should replace `other` in a read model (same market, newer version).
    public func supersedes(_ other: OddsUpdate) -> Bool {
        marketKey == other.marketKey && version > other.version
    }
}

public struct MarketKey: Sendable, Hashable, CustomStringConvertible {
    public var eventId: String
    public var market: String
    public init(eventId: String, market: String) {
        self.eventId = eventId
        self.market = market
    }
    public var description: String { "\(eventId)/\(market)" }
}

extension OddsUpdate: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case eventId = "event_id"
        case homeTeam = "home_team"
        case awayTeam = "away_team"
        case market, odds, status
        case updatedAt = "updated_at"
        case source, version
    }

    /// Plain decoding for trusted sources (our own read models). Untrusted bytes go through
    /// `OddsUpdateValidator`, which reports every reason a frame is invalid.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        eventId = try container.decode(String.self, forKey: .eventId)
        homeTeam = try container.decode(String.self, forKey: .homeTeam)
        awayTeam = try container.decode(String.self, forKey: .awayTeam)
        market = try container.decode(String.self, forKey: .market)
        odds = try container.decode([String: Double].self, forKey: .odds)
        status = try container.decodeIfPresent(MarketStatus.self, forKey: .status) ?? .open
        updatedAt = try container.decode(Timestamp.self, forKey: .updatedAt)
        source = try container.decode(String.self, forKey: .source)
        version = try container.decode(Int64.self, forKey: .version)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventId, forKey: .eventId)
        try container.encode(homeTeam, forKey: .homeTeam)
        try container.encode(awayTeam, forKey: .awayTeam)
        try container.encode(market, forKey: .market)
        try container.encode(odds, forKey: .odds)
        try container.encode(status, forKey: .status)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(source, forKey: .source)
        try container.encode(version, forKey: .version)
    }
}

extension OddsUpdate {
    /// Canonical JSON (sorted keys) used on the wire and in the read models: the bytes
    /// `ContractCoding.encoder` gives, written by hand (the encoder's generic `Codable` path
    /// was 13 % of odds-processor's CPU at 1,000 updates/s, `perf`).
    public func canonicalJSON() -> [UInt8] {
        var writer = JSONTextWriter(capacity: 256)
        write(to: &writer)
        return writer.bytes
    }

    public func write(to writer: inout JSONTextWriter) {
        writer.raw(#"{"away_team":"#)
        writer.quoted(awayTeam)
        writer.raw(#","event_id":"#)
        writer.quoted(eventId)
        writer.raw(#","home_team":"#)
        writer.quoted(homeTeam)
        writer.raw(#","market":"#)
        writer.quoted(market)
        writer.raw(#","odds":"#)
        Self.writeOdds(odds, to: &writer)
        writer.raw(#","source":"#)
        writer.quoted(source)
        writer.raw(#","status":"#)
        writer.quoted(status.rawValue)
        writer.raw(#","updated_at":"#)
        writer.quoted(updatedAt.rfc3339)
        writer.raw(#","version":"#)
        writer.integer(version)
        writer.raw("}")
    }

    /// Selection → price as a JSON object, keys sorted as `ContractCoding.encoder` sorts them.
    public static func writeOdds(_ odds: [String: Double], to writer: inout JSONTextWriter) {
        writer.raw("{")
        for (index, selection) in odds.keys.sorted().enumerated() {
            if index > 0 { writer.raw(",") }
            writer.quoted(selection)
            writer.raw(":")
            writer.number(odds[selection]!)
        }
        writer.raw("}")
    }

    public func jsonData() -> Data { Data(canonicalJSON()) }

    public func jsonString() -> String { String(decoding: canonicalJSON(), as: UTF8.self) }
}

/// Shared, configured coders. JSONEncoder/JSONDecoder are thread-safe for encode/decode calls.
public enum ContractCoding {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public static let decoder = JSONDecoder()
}
