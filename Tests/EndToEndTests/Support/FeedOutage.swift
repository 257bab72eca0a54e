import Contracts
import Foundation
import IntegrationSupport
import Logging
import PostgresNIO
import Redis
import Synchronization
import Testing

/// Helpers of the feed liveness scenarios (issue 14): the platform's status overlay of the
/// simulator's feed as the processor stores it, odds-service's REST view of each market's
/// effective status, and a WebSocket follower that keeps every frame in arrival order (status
/// frames included) so their order relative to odds updates can be checked.
enum FeedOutage {
    /// The simulator's feed id: the `source` of every update it sends.
    static let feed = "supplier-simulator"

    /// The feed's overlay in Redis (`odds:feed_status`), nil while none is stored.
    static func overlay(_ redis: RedisClient) async throws -> FeedStatus? {
        guard let bytes = try await redis.hget(RedisKeys.feedStatus, field: feed) else { return nil }
        return try ContractCoding.decoder.decode(FeedStatus.self, from: Data(bytes))
    }

    /// The feed's overlay in PostgreSQL (`feed_status`, the record that survives restarts).
    static func storedOverlay(_ database: ScratchDatabase) async throws -> FeedStatus? {
        try await database.withConnection { connection in
            let rows = try await connection.query("""
                SELECT state, reason, detail, (extract(epoch FROM since) * 1000)::int8 FROM feed_status WHERE feed = \(feed)
                """, logger: Logger(label: "e2e.feed-status"))
            for try await (state, reason, detail, sinceMs) in rows.decode((String, String?, String?, Int64).self) {
                guard let state = FeedStatus.State(rawValue: state) else { throw TestFailure("feed_status.state \(state)") }
                return FeedStatus(feed: feed, state: state, reason: reason, detail: detail, since: Timestamp(millisecondsSinceEpoch: sinceMs))
            }
            return nil
        }
    }

    /// Waits until the feed is up and open: ingest reports `up` and the processor's overlay in
    /// Redis is `open` (a first start goes through starting/recovering: suspended, then open).
    @discardableResult
    static func waitUntilOpen(_ world: PipelineWorld, _ redis: RedisClient, _ what: String,
                              timeout: Duration = .seconds(60)) async throws -> FeedStatus {
        var last: FeedStatus?
        var ingestUp = false
        let open = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(50)) {
            ingestUp = await world.metric(.ingest, #"odds_ingest_feed_state{state="up"}"#) == 1
            last = try await overlay(redis)
            return ingestUp && last?.state == .open
        }
        guard open, let last else {
            throw TestFailure("waited \(timeout) for \(what) (ingest up: \(ingestUp), overlay: \(last.map { "\($0)" } ?? "none")), in vain\n\(world.diagnostics())")
        }
        return last
    }

    /// Every sample of metric `name` (`name{labels} value` lines), as (labels, value).
    static func samples(_ name: String, in text: String) -> [(labels: String, value: Double)] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix(name + "{"), let close = line.firstIndex(of: "}") else { return nil }
            let labels = String(line[line.index(line.startIndex, offsetBy: name.count + 1)..<close])
            return (labels, Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)) ?? 0)
        }
    }

    /// Sum of the samples of `name` whose labels contain every one of `labels` (`key="value"`).
    static func sum(_ name: String, labels: [String], in text: String) -> Double {
        samples(name, in: text).filter { sample in labels.allSatisfy { sample.labels.contains($0) } }.reduce(0) { $0 + $1.value }
    }

    static func seconds(_ duration: Duration) -> String {
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.2f s", milliseconds / 1000)
    }
}

/// One market as `GET /v1/events/{id}/odds` shows it.
struct RESTMarket: Sendable, Equatable {
    let market: String
    let odds: [String: Double]
    /// The supplier's status, unchanged by the platform.
    let status: String
    let version: Int64
    let effectiveStatus: String
    let statusReason: String?
    let statusSince: String?

    var isFeedDown: Bool { effectiveStatus == "suspended" && statusReason == StatusReason.feedDown.rawValue }
}

/// One event as `GET /v1/events` shows it.
struct RESTEvent: Sendable, Equatable {
    let eventId: String
    let effectiveStatus: String
    let statusReason: String?
    let statusSince: String?
}

/// odds-service's REST view of the effective status (LIVENESS contract).
enum RESTStatusView {
    static func odds(_ world: PipelineWorld, eventId: String) async throws -> [String: RESTMarket] {
        let url = "http://127.0.0.1:\(world.serviceHTTPPort)/v1/events/\(eventId)/odds"
        let answer = try await HTTP.get(url)
        guard answer.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let markets = object["markets"] as? [[String: Any]]
        else { throw TestFailure("GET \(url) answered \(answer.status): \(answer.body.prefix(300))") }
        var result: [String: RESTMarket] = [:]
        for market in markets {
            guard let name = market["market"] as? String, let status = market["status"] as? String,
                  let version = (market["version"] as? NSNumber)?.int64Value,
                  let odds = market["odds"] as? [String: NSNumber],
                  let effective = market["effectiveStatus"] as? String
            else { throw TestFailure("GET \(url): unreadable market (effectiveStatus missing?) \(market)") }
            result[name] = RESTMarket(market: name, odds: odds.mapValues(\.doubleValue), status: status, version: version,
                                      effectiveStatus: effective, statusReason: market["statusReason"] as? String,
                                      statusSince: market["statusSince"] as? String)
        }
        return result
    }

    /// Every market of `eventIds`.
    static func allOdds(_ world: PipelineWorld, eventIds: [String]) async throws -> [MarketKey: RESTMarket] {
        var all: [MarketKey: RESTMarket] = [:]
        for event in eventIds {
            for (market, value) in try await odds(world, eventId: event) { all[MarketKey(eventId: event, market: market)] = value }
        }
        return all
    }

    static func events(_ world: PipelineWorld) async throws -> [String: RESTEvent] {
        let url = "http://127.0.0.1:\(world.serviceHTTPPort)/v1/events?limit=1000"
        let answer = try await HTTP.get(url)
        guard answer.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let events = object["events"] as? [[String: Any]]
        else { throw TestFailure("GET \(url) answered \(answer.status): \(answer.body.prefix(300))") }
        var result: [String: RESTEvent] = [:]
        for event in events {
            guard let id = event["eventId"] as? String, let effective = event["effectiveStatus"] as? String
            else { throw TestFailure("GET \(url): unreadable event (effectiveStatus missing?) \(event)") }
            result[id] = RESTEvent(eventId: id, effectiveStatus: effective, statusReason: event["statusReason"] as? String,
                                   statusSince: event["statusSince"] as? String)
        }
        return result
    }

    /// Waits until every market of `eventIds` satisfies `condition` in REST; returns them.
    static func waitForAll(_ world: PipelineWorld, eventIds: [String], _ what: String, timeout: Duration,
                           _ condition: @escaping @Sendable (RESTMarket) -> Bool) async throws -> [MarketKey: RESTMarket] {
        var last: [MarketKey: RESTMarket] = [:]
        let met = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(25)) {
            last = try await allOdds(world, eventIds: eventIds)
            return last.count == eventIds.count * 3 && last.values.allSatisfy(condition)
        }
        guard met else {
            let failing = last.filter { !condition($0.value) }.prefix(3).map { "\($0.key): \($0.value)" }
            throw TestFailure("waited \(timeout) for \(what), in vain: \(last.count) markets, e.g. \(failing)\n\(world.diagnostics())")
        }
        return last
    }
}

/// A WebSocket client of odds-service that subscribes to every event once and keeps every frame
/// it receives, decoded, in arrival order (it does not reconnect: the scenarios that restart
/// odds-service connect a new one).
final class FeedFollower: Sendable {
    struct Frame: Sendable {
        /// Position in arrival order.
        let index: Int
        let at: ContinuousClock.Instant
        let wallMs: Int64
        let message: ServerMessage?
        let text: String
    }

    let name: String
    let eventIds: [String]
    let connectedAt: ContinuousClock.Instant
    private let client: WSTestClient
    private let decoded = Mutex<[Frame]>([])

    private init(name: String, eventIds: [String], client: WSTestClient, connectedAt: ContinuousClock.Instant) {
        self.name = name
        self.eventIds = eventIds
        self.client = client
        self.connectedAt = connectedAt
    }

    /// Connects, subscribes to `eventIds` in one frame and waits for a snapshot of each.
    static func connect(_ world: PipelineWorld, eventIds: [String], name: String) async throws -> FeedFollower {
        let client = try await WSTestClient.connect(world.serviceWebSocketURL)
        let follower = FeedFollower(name: name, eventIds: eventIds, client: client, connectedAt: .now)
        try await client.send(#"{"type":"subscribe","eventIds":[\#(eventIds.map { "\"\($0)\"" }.joined(separator: ","))]}"#)
        try await follower.waitFor("a snapshot of every event on \(name)", world, timeout: .seconds(30)) { follower in
            Set(follower.snapshots().keys) == Set(eventIds)
        }
        return follower
    }

    /// Every frame so far (decoding the new ones).
    var frames: [Frame] {
        let received = client.received
        return decoded.withLock { frames in
            for index in frames.count..<received.count {
                let raw = received[index]
                frames.append(Frame(index: index, at: raw.at, wallMs: raw.wallMs, message: raw.message, text: raw.text))
            }
            return frames
        }
    }

    var isFinished: Bool { client.isFinished }

    /// Polls (at most `timeout`) until `condition` holds; throws a failure naming `what`.
    func waitFor(_ what: String, _ world: PipelineWorld, timeout: Duration,
                 _ condition: @escaping @Sendable (FeedFollower) -> Bool) async throws {
        let met = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(10)) { condition(self) }
        if !met {
            throw TestFailure("waited \(timeout) for \(what), in vain (\(name): \(frames.count) frames, finished \(isFinished), problems \(problems().prefix(3)))\n\(world.diagnostics())")
        }
    }

    /// The first snapshot of each event: its frame, markets and the platform status it carried.
    func snapshots() -> [String: (frame: Frame, markets: [OddsUpdate], status: EventStatus?)] {
        var result: [String: (frame: Frame, markets: [OddsUpdate], status: EventStatus?)] = [:]
        for frame in frames {
            if case .snapshot(let eventId, let markets, let status)? = frame.message, result[eventId] == nil {
                result[eventId] = (frame, markets, status)
            }
        }
        return result
    }

    /// Every `status` frame, in arrival order.
    func statusFrames() -> [(frame: Frame, eventId: String, status: EventStatus)] {
        frames.compactMap { frame in
            guard case .status(let eventId, let status)? = frame.message else { return nil }
            return (frame, eventId, status)
        }
    }

    /// Per event, the first `status` frame matching `predicate` at or after `from`.
    func firstStatus(from: ContinuousClock.Instant, where predicate: (EventStatus) -> Bool) -> [String: (frame: Frame, status: EventStatus)] {
        var result: [String: (frame: Frame, status: EventStatus)] = [:]
        for entry in statusFrames() where entry.frame.at >= from && predicate(entry.status) && result[entry.eventId] == nil {
            result[entry.eventId] = (entry.frame, entry.status)
        }
        return result
    }

    /// Every update received (snapshot markets and odds frames), with the frame it came in.
    func updates() -> [(frame: Frame, update: OddsUpdate)] {
        frames.flatMap { frame -> [(frame: Frame, update: OddsUpdate)] in
            switch frame.message {
            case .snapshot(_, let markets, _)?: markets.map { (frame, $0) }
            case .odds(_, let update)?: [(frame, update)]
            default: []
            }
        }
    }

    /// Per market, the highest version received in frames before `index`.
    func newestVersions(before index: Int) -> [MarketKey: Int64] {
        var newest: [MarketKey: Int64] = [:]
        for (frame, update) in updates() where frame.index < index {
            newest[update.marketKey] = max(newest[update.marketKey] ?? 0, update.version)
        }
        return newest
    }

    /// Markets whose versions did not strictly increase in arrival order.
    func versionRegressions() -> [String] {
        var last: [MarketKey: Int64] = [:]
        var regressions: [String] = []
        for (frame, update) in updates() {
            if let before = last[update.marketKey], update.version <= before {
                regressions.append("\(name) frame \(frame.index) \(update.marketKey): v\(update.version) after v\(before)")
            }
            last[update.marketKey] = max(update.version, last[update.marketKey] ?? 0)
        }
        return regressions
    }

    /// Error frames and frames that do not decode (none are expected).
    func problems() -> [String] {
        frames.compactMap { frame in
            switch frame.message {
            case nil: "\(name): undecodable frame \(frame.text.prefix(200))"
            case .error(let code, let message)?: "\(name): error frame \(code): \(message)"
            default: nil
            }
        }
    }

    func close() async { await client.close() }
}

/// The pipeline started the way `PipelineRun` starts it, for scenarios that end without the feed
/// (no convergence to a journal): processor, odds-service, a store watch, then supplier and
/// ingest, until the feed is up and open.
struct OutageRig: Sendable {
    let world: PipelineWorld
    let redis: RedisClient
    let reader: ReadModelReader
    let watch: StoreWatch

    static func start(_ world: PipelineWorld) async throws -> OutageRig {
        try await world.start(.processor)
        try await world.start(.service)
        let redis = try RedisClient(address: world.redis.address)
        let reader = ReadModelReader(database: world.database, redis: redis, eventIds: world.eventIds)
        let rig = OutageRig(world: world, redis: redis, reader: reader, watch: StoreWatch.start(reader))
        do {
            try await world.start(.supplier)
            try await world.start(.ingest)
            try await FeedOutage.waitUntilOpen(world, redis, "the feed to be up and open after the first start")
        } catch {
            await rig.close()
            throw error
        }
        return rig
    }

    func close() async {
        _ = await watch.stop()
        await redis.shutdown()
    }

    /// `odds_history` rules that hold whatever happened to the feed: no (event, market,
    /// version) twice, and per market versions strictly increase in insertion order.
    func historyProblems() async throws -> (rows: Int, problems: [String]) {
        let rows = try await reader.postgresHistory(teams: [:])
        var seen = Set<String>()
        var last: [MarketKey: Int64] = [:]
        var problems: [String] = []
        for row in rows {
            let key = row.update.marketKey
            if !seen.insert("\(key)@\(row.update.version)").inserted { problems.append("\(key) v\(row.update.version) twice") }
            if let before = last[key], row.update.version <= before { problems.append("\(key): v\(row.update.version) after v\(before)") }
            last[key] = max(row.update.version, last[key] ?? 0)
        }
        return (rows.count, problems)
    }
}
