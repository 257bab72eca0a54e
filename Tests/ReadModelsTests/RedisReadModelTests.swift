import Contracts
import Foundation
import IntegrationSupport
import ReadModels
import Redis
import Testing

/// RedisOddsWriter (the Lua compare-and-set + PUBLISH) and RedisOddsReader against real Redis.
@Suite("Redis read model", .timeLimit(.minutes(2)))
struct RedisReadModelTests {
    typealias U = ReadModelTest

    @Test func scriptStoresAndPublishesOnlyNewerVersions() async throws {
        try await RedisReadModels.with { redis async throws in
            let recorder = try await redis.recordBroadcasts()
            let event = redis.event(0)
            let v2 = U.update(event, "btts", version: 2, price: 1.62)
            let v3 = U.update(event, "btts", version: 3, price: 1.63)

            #expect(try await redis.writer.apply([v2]) == [true])
            #expect(try await redis.writer.apply([U.update(event, "btts", version: 1, price: 9.1)]) == [false])
            #expect(try await redis.writer.apply([U.update(event, "btts", version: 2, price: 9.2)]) == [false])
            #expect(try await redis.client.hget(RedisKeys.currentOdds(eventId: event), field: "btts") == Array(v2.jsonData()))
            #expect(try await redis.writer.apply([v3]) == [true])

            let stored = try await redis.client.hgetall(RedisKeys.currentOdds(eventId: event))
            #expect(stored == ["btts": Array(v3.jsonData())])
            // Published in the order applied, so once v3 is in, nothing stale can still come.
            let payloads = try await recorder.waitForMessages(2)
            #expect(payloads.count == 2)
            #expect(try payloads.map { try ContractCoding.decoder.decode(BroadcastMessage.self, from: Data($0)) }
                    == [BroadcastMessage(payload: v2), BroadcastMessage(payload: v3)])
            for payload in payloads {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])
                #expect(Set(object.keys) == ["eventId", "payload"])
                #expect(object["eventId"] as? String == event)
            }
        }
    }

    @Test func oneBatchWithSeveralVersionsOfAMarketKeepsTheNewest() async throws {
        try await RedisReadModels.with { redis async throws in
            let recorder = try await redis.recordBroadcasts()
            let event = redis.event(0)
            let batch = [
                U.update(event, "1x2", version: 1), U.update(event, "1x2", version: 3),
                U.update(event, "1x2", version: 2), U.update(event, "ou_2_5", version: 1),
                U.update(event, "1x2", version: 3, price: 8.8),
            ]
            #expect(try await redis.writer.apply(batch) == [true, true, false, true, false])
            // Replaying the whole batch (a retry after a failed commit) changes nothing.
            #expect(try await redis.writer.apply(batch) == [false, false, false, false, false])
            #expect(try await redis.reader.currentOdds(eventId: event) == [batch[1], batch[3]])

            let payloads = try await recorder.waitForMessages(3)
            // A sentinel published after the replay proves nothing else was published before it.
            let sentinel = U.update(event, "ou_2_5", version: 9)
            #expect(try await redis.writer.apply([sentinel]) == [true])
            let all = try await recorder.waitForMessages(4)
            #expect(payloads.count >= 3)
            #expect(try all.map { try ContractCoding.decoder.decode(BroadcastMessage.self, from: Data($0)).payload }
                    == [batch[0], batch[1], batch[3], sentinel])
        }
    }

    @Test func eventsIndexKeepsTheNewestUpdateTime() async throws {
        try await RedisReadModels.with { redis async throws in
            let event = redis.event(0)
            let score = { try await redis.client.send(command: ["ZSCORE", .string(OddsRedisKeys.events), .string(event)]).string }
            _ = try await redis.writer.apply([U.update(event, version: 1, updatedAtMs: 1_790_000_500_000)])
            #expect(try await score() == "1790000500000")
            // A newer version stamped earlier by the supplier is applied, but the index never moves back.
            #expect(try await redis.writer.apply([U.update(event, version: 2, updatedAtMs: 1_790_000_400_000)]) == [true])
            #expect(try await score() == "1790000500000")
            _ = try await redis.writer.apply([U.update(event, version: 3, updatedAtMs: 1_790_000_600_000)])
            #expect(try await score() == "1790000600000")
        }
    }

    @Test func readerReturnsWhatWasWritten() async throws {
        try await RedisReadModels.with { redis async throws in
            let event = redis.event(0)
            let other = redis.event(1)
            let unknown = redis.event(2)
            let first = [U.update(event, "ou_2_5", version: 4), U.update(event, "1x2", version: 7),
                         U.update(other, "btts", version: 1, home: "Ceara", away: "Fortaleza")]
            _ = try await redis.writer.apply(first)
            #expect(try await redis.reader.currentOdds(eventId: event) == [first[1], first[0]])
            #expect(try await redis.reader.currentOdds(eventIds: [event, other, unknown])
                    == [event: [first[1], first[0]], other: [first[2]], unknown: []])
            #expect(try await redis.reader.currentOdds(eventId: unknown).isEmpty)

            // A new value for a market already read (and memoised) is what the next read returns.
            let newer = U.update(event, "1x2", version: 8, price: 1.44, status: .suspended)
            _ = try await redis.writer.apply([newer])
            #expect(try await redis.reader.currentOdds(eventId: event) == [newer, first[0]])

            // A value that does not decode is skipped; the other markets are still served.
            _ = try await redis.client.hset(RedisKeys.currentOdds(eventId: event), field: "broken", to: "{not json")
            #expect(try await redis.reader.currentOdds(eventId: event) == [newer, first[0]])
            #expect(await redis.reader.isReachable())
        }
    }

    @Test func eventsListIsNewestFirstWithTeamsAndMarkets() async throws {
        // `odds:events` is one key for every writer, so exact lists need a Redis of their own.
        try await withPrivateRedis { server async throws in
            try await RedisReadModels.with(address: server.address) { redis async throws in
                let (a, b, c) = (redis.event(0), redis.event(1), redis.event(2))
                _ = try await redis.writer.apply([
                    U.update(a, "1x2", version: 1, updatedAtMs: 1_790_000_100_000),
                    U.update(b, "btts", version: 1, updatedAtMs: 1_790_000_300_000, home: "Sport", away: "Nautico"),
                    U.update(c, "1x2", version: 1, updatedAtMs: 1_790_000_200_000),
                    U.update(a, "ou_2_5", version: 1, updatedAtMs: 1_790_000_400_000, home: "Renamed", away: "Side"),
                ])
                let events = try await redis.reader.events(limit: 10)
                #expect(events == [
                    EventSummary(eventId: a, homeTeam: "Renamed", awayTeam: "Side", markets: ["1x2", "ou_2_5"],
                                 lastUpdate: Timestamp(millisecondsSinceEpoch: 1_790_000_400_000), sources: [U.source]),
                    EventSummary(eventId: b, homeTeam: "Sport", awayTeam: "Nautico", markets: ["btts"],
                                 lastUpdate: Timestamp(millisecondsSinceEpoch: 1_790_000_300_000), sources: [U.source]),
                    EventSummary(eventId: c, homeTeam: "Santos", awayTeam: "Gremio", markets: ["1x2"],
                                 lastUpdate: Timestamp(millisecondsSinceEpoch: 1_790_000_200_000), sources: [U.source]),
                ])
                #expect(try await redis.reader.events(limit: 2).map(\.eventId) == [a, b])
            }
        }
    }
}
