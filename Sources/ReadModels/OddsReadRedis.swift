import Contracts
import Foundation
import Logging
import Redis
import Synchronization

/// Reads the Redis read model: hash `odds:current:{event_id}` (field = market, value = OddsUpdate
/// JSON) and sorted set `odds:events` (member = event_id, score = newest updated_at in ms).
public struct RedisOddsReader: OddsReadRepository {
    public let client: RedisClient
    let logger: Logger
    /// The last decoded value per hash field: a read whose bytes are unchanged reuses it, so
    /// hot events are not JSON-decoded again on every request.
    private let memo = DecodedOddsMemo(capacity: 100_000)

    public init(client: RedisClient, logger: Logger = Logger(label: "odds.read.redis")) {
        self.client = client
        self.logger = logger
    }

    public func currentOdds(eventId: String) async throws -> [OddsUpdate] {
        decode(eventId: eventId, fields: try await client.hgetall(RedisKeys.currentOdds(eventId: eventId)))
    }

    /// One pipelined round trip for all events.
    public func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        guard !eventIds.isEmpty else { return [:] }
        let commands: [[RedisArgument]] = eventIds.map { ["HGETALL", .string(RedisKeys.currentOdds(eventId: $0))] }
        let replies = try await client.pipeline(commands)
        var result: [String: [OddsUpdate]] = [:]
        for (eventId, reply) in zip(eventIds, replies) {
            result[eventId] = decode(eventId: eventId, fields: try RedisClient.hashFields(try reply.get()))
        }
        return result
    }

    public func events(limit: Int) async throws -> [EventSummary] {
        let reply = try await client.send(command: ["ZREVRANGE", .string(OddsRedisKeys.events), 0, .integer(max(0, limit - 1))])
        guard case .array(let members) = reply else {
            throw RedisError.unexpectedReply(command: "ZREVRANGE", reply: reply.description)
        }
        let eventIds = members.compactMap(\.string)
        let odds = try await currentOdds(eventIds: eventIds)
        return eventIds.compactMap { OddsReadModel.summary(eventId: $0, markets: odds[$0] ?? []) }
    }

    /// The platform status overlay: hash `odds:feed_status` (field = feed id, value = FeedStatus
    /// JSON, written by odds-processor). Values that do not decode are returned apart, by field.
    public func feedStatuses() async throws -> FeedStatusRead {
        var read = FeedStatusRead()
        for (field, bytes) in try await client.hgetall(RedisKeys.feedStatus).sorted(by: { $0.key < $1.key }) {
            if let status = try? ContractCoding.decoder.decode(FeedStatus.self, from: Data(bytes)) {
                read.statuses.append(status)
            } else {
                read.invalidFields.append(field)
            }
        }
        return read
    }

    public func isReachable() async -> Bool {
        (try? await client.ping()) != nil
    }

    /// Values that do not decode are skipped and logged (the processor only writes valid JSON).
    func decode(eventId: String, fields: [String: [UInt8]]) -> [OddsUpdate] {
        var updates: [OddsUpdate] = []
        updates.reserveCapacity(fields.count)
        for (market, bytes) in fields {
            let key = MarketKey(eventId: eventId, market: market)
            if let known = memo.lookup(key, bytes: bytes) {
                updates.append(known)
                continue
            }
            do {
                let update = try ContractCoding.decoder.decode(OddsUpdate.self, from: Data(bytes))
                memo.store(key, bytes: bytes, update: update)
                updates.append(update)
            } catch {
                logger.warning("skipping undecodable odds in redis", metadata: [
                    "eventId": "\(eventId)", "market": "\(market)", "error": "\(error)",
                ])
            }
        }
        return updates.sorted { $0.market < $1.market }
    }
}

/// What `RedisOddsReader.feedStatuses()` found.
public struct FeedStatusRead: Sendable, Hashable {
    public var statuses: [FeedStatus] = []
    /// Hash fields whose value is not a FeedStatus.
    public var invalidFields: [String] = []
}

/// Bounded map (event, market) → last raw value and its decoded form. Only a byte-identical
/// value hits, so it can never answer with anything but what Redis returned.
final class DecodedOddsMemo: Sendable {
    private struct Entry {
        var bytes: [UInt8]
        var update: OddsUpdate
    }
    private let entries = Mutex<[MarketKey: Entry]>([:])
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func lookup(_ key: MarketKey, bytes: [UInt8]) -> OddsUpdate? {
        entries.withLock { entries in
            guard let entry = entries[key], entry.bytes == bytes else { return nil }
            return entry.update
        }
    }

    func store(_ key: MarketKey, bytes: [UInt8], update: OddsUpdate) {
        entries.withLock { entries in
            // Crude but bounded: start over when full (a cold read only costs a decode).
            if entries.count >= capacity, entries[key] == nil { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(bytes: bytes, update: update)
        }
    }
}
