import Foundation

/// The platform's status overlay of one feed, written by odds-processor (PostgreSQL `feed_status`,
/// Redis hash `odds:feed_status`, channel `odds_feed_status_broadcast`) and read by odds-service.
/// While a feed is suspended, every market whose `source` is that feed is shown suspended with
/// reason `feed_down`, whatever its last supplier status: nobody stands behind its price. The
/// supplier's versions are never touched.
public struct FeedStatus: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable, Hashable, CaseIterable {
        case open
        case suspended
    }

    /// Why the platform suspended a feed's markets (`reason`), and what it saw (`detail`).
    public static let feedDownReason = "feed_down"

    /// The feed id: the `source` of its updates (e.g. `supplier-simulator`).
    public var feed: String
    public var state: State
    /// `feed_down` while suspended; nil when open.
    public var reason: String?
    /// What made the feed count as down: `supplier_silent`, `supplier_disconnected`,
    /// `heartbeat_missing`, `recovering`, `starting`; nil when open.
    public var detail: String?
    /// When this state began.
    public var since: Timestamp

    public init(feed: String, state: State, reason: String?, detail: String?, since: Timestamp) {
        self.feed = feed
        self.state = state
        self.reason = reason
        self.detail = detail
        self.since = since
    }

    public static func open(feed: String, since: Timestamp) -> FeedStatus {
        FeedStatus(feed: feed, state: .open, reason: nil, detail: nil, since: since)
    }

    public static func suspended(feed: String, detail: String, since: Timestamp) -> FeedStatus {
        FeedStatus(feed: feed, state: .suspended, reason: feedDownReason, detail: detail, since: since)
    }

    public var isSuspended: Bool { state == .suspended }

    public func jsonData() -> Data { (try? ContractCoding.encoder.encode(self)) ?? Data() }
}

/// What odds-ingest reports about its feed on Kafka topic `odds_feed_status` (key = feed id),
/// every heartbeat interval and at once on a change. A missing record is news too: a dead
/// ingest sends none.
public struct FeedHeartbeat: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable, Hashable, CaseIterable {
        /// Live, and everything the supplier sent is acknowledged by Kafka.
        case up
        /// Connected, replaying or reading a snapshot (or waiting for Kafka to acknowledge it).
        case recovering
        case down
    }

    public var feed: String
    public var state: State
    /// Why it is not up: `starting`, `supplier_disconnected`, `supplier_silent`, `recovering`.
    public var reason: String?
    /// When this state began.
    public var since: Timestamp
    public var sentAt: Timestamp
    /// The ingest instance that sent it.
    public var ingest: String
    /// The last stream position read (`E:N`), if any.
    public var position: String?

    public init(feed: String, state: State, reason: String?, since: Timestamp, sentAt: Timestamp, ingest: String, position: String?) {
        self.feed = feed
        self.state = state
        self.reason = reason
        self.since = since
        self.sentAt = sentAt
        self.ingest = ingest
        self.position = position
    }

    public func jsonData() -> Data { (try? ContractCoding.encoder.encode(self)) ?? Data() }
}
