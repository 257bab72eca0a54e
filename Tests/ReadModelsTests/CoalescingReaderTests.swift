import Contracts
import Foundation
import IntegrationSupport
import ReadModels
import Redis
import Synchronization
import Testing

/// Passes reads through to a real store and records the batches it was asked for (the sizes and
/// how many ran at once); it answers nothing itself.
final class RecordingStore: OddsReadRepository, Sendable {
    let store: any OddsReadRepository
    private let state = Mutex<(inFlight: Int, maxInFlight: Int, batches: [[String]])>((0, 0, []))

    init(_ store: any OddsReadRepository) { self.store = store }

    var batches: [[String]] { state.withLock { $0.batches } }
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }

    func currentOdds(eventId: String) async throws -> [OddsUpdate] {
        try await currentOdds(eventIds: [eventId])[eventId] ?? []
    }

    func currentOdds(eventIds: [String]) async throws -> [String: [OddsUpdate]] {
        state.withLock { state in
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            state.batches.append(eventIds)
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        return try await store.currentOdds(eventIds: eventIds)
    }

    func events(limit: Int) async throws -> [EventSummary] { try await store.events(limit: limit) }
    func isReachable() async -> Bool { await store.isReachable() }
}

/// One concurrent single-event read per entry of `eventIds`; the answers (or errors) in request order.
func concurrentReads(
    _ reader: any OddsReadRepository, _ eventIds: [String]
) async -> [Result<[OddsUpdate], any Error>] {
    await withTaskGroup(of: (Int, Result<[OddsUpdate], any Error>).self) { group in
        for (index, eventId) in eventIds.enumerated() {
            group.addTask {
                do { return (index, .success(try await reader.currentOdds(eventId: eventId))) } catch { return (index, .failure(error)) }
            }
        }
        var results = [Result<[OddsUpdate], any Error>?](repeating: nil, count: eventIds.count)
        for await (index, result) in group { results[index] = result }
        return results.map { $0! }
    }
}

@Suite("CoalescingOddsReader over real Redis", .timeLimit(.minutes(2)))
struct CoalescingReaderTests {
    typealias U = ReadModelTest

    @Test(arguments: [1, 3])
    func concurrentRequestsEachGetTheirOwnEvent(maxBatchesInFlight: Int) async throws {
        try await RedisReadModels.with { redis async throws in
            let events = (0..<8).map { redis.event($0) }
            let unknown = redis.event(99)
            let markets = ["1x2", "btts", "ou_2_5"]
            var expected: [String: [OddsUpdate]] = [unknown: []]
            for (index, event) in events.enumerated() {
                // Event i has the first (i % 3) + 1 markets, at version i + 1.
                let updates = markets.prefix(index % 3 + 1).map { U.update(event, $0, version: Int64(index + 1)) }
                #expect(try await redis.writer.apply(updates).allSatisfy { $0 })
                expected[event] = updates
            }
            let recording = RecordingStore(redis.reader)
            let coalescing = CoalescingOddsReader(store: recording, maxBatchesInFlight: maxBatchesInFlight, maxEventsPerBatch: 3)

            let asked = (0..<240).map { $0 % 9 == 8 ? unknown : events[$0 % 8] }
            let answers = await concurrentReads(coalescing, asked)
            for (eventId, answer) in zip(asked, answers) {
                #expect(try answer.get() == expected[eventId], "answer for \(eventId)")
            }
            // Bounded pipelines, each event once per batch, never more batches at once than allowed.
            #expect(recording.batches.allSatisfy { $0.count <= 3 && Set($0).count == $0.count })
            #expect(recording.batches.count <= asked.count)
            #expect(recording.maxInFlight <= maxBatchesInFlight)
            #expect(try await coalescing.currentOdds(eventIds: [events[2], unknown]) == [events[2]: expected[events[2]]!, unknown: []])
            #expect(await coalescing.isReachable())
        }
    }

    @Test func anAnswerIsNeverOlderThanTheStoreWhenTheRequestArrived() async throws {
        try await RedisReadModels.with { redis async throws in
            let event = redis.event(0)
            let coalescing = CoalescingOddsReader(store: redis.reader, maxBatchesInFlight: 1)
            // Background readers keep a batch in flight most of the time, so requests made right
            // after a write often arrive while a batch issued before that write is still out.
            let background = Task {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<4 {
                        group.addTask { while !Task.isCancelled { _ = try? await coalescing.currentOdds(eventId: event) } }
                    }
                }
            }
            defer { background.cancel() }
            for version in Int64(1)...30 {
                let update = U.update(event, "1x2", version: version, price: Double(150 + version) / 100)
                #expect(try await redis.writer.apply([update]) == [true])
                let answers = await concurrentReads(coalescing, Array(repeating: event, count: 6))
                for answer in answers { #expect(try answer.get() == [update], "after writing version \(version)") }
            }
            background.cancel()
            await background.value
        }
    }

    @Test func aFailedBatchFailsItsRequestsAndLaterBatchesRecover() async throws {
        try await withPrivateRedis { server async throws in
            try await RedisReadModels.with(address: server.address) { redis async throws in
                let event = redis.event(0)
                let coalescing = CoalescingOddsReader(store: redis.reader, maxBatchesInFlight: 2)
                let before = U.update(event, version: 1)
                _ = try await redis.writer.apply([before])
                #expect(try await coalescing.currentOdds(eventId: event) == [before])

                server.stop(signal: SIGKILL)
                let failed = await concurrentReads(coalescing, Array(repeating: event, count: 12))
                #expect(failed.allSatisfy { if case .failure = $0 { true } else { false } })
                #expect(await coalescing.isReachable() == false)

                try await server.start()
                let after = U.update(event, version: 2)
                // The first command after the restart may still meet a stale socket; bounded retry.
                #expect(try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
                    try await redis.writer.apply([after]) == [true]
                })
                #expect(try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
                    try await coalescing.currentOdds(eventId: event) == [after]
                })
                let recovered = await concurrentReads(coalescing, Array(repeating: event, count: 12))
                for answer in recovered { #expect(try answer.get() == [after]) }
            }
        }
    }
}

/// The pieces odds-service combines (Redis first, PostgreSQL as fallback, never older than
/// Redis), over both real stores holding different versions.
@Suite("Redis and PostgreSQL read models combined", .timeLimit(.minutes(2)))
struct CombinedReadTests {
    typealias U = ReadModelTest

    @Test func newestPerMarketNeverGoesBehindEitherStore() async throws {
        try await PostgresReadModels.with { pg async throws in
            try await RedisReadModels.with { redis async throws in
                let event = redis.event(0)
                let onlyInPostgres = redis.event(1)
                let inRedis = [U.update(event, "1x2", version: 5), U.update(event, "btts", version: 1),
                               U.update(event, "dnb", version: 7, price: 1.11)]
                let inPostgres = [U.update(event, "1x2", version: 4), U.update(event, "btts", version: 3),
                                  U.update(event, "ou_2_5", version: 2), U.update(event, "dnb", version: 7, price: 9.99),
                                  U.update(onlyInPostgres, "1x2", version: 1)]
                _ = try await redis.writer.apply(inRedis)
                _ = try await pg.writer.apply(inPostgres)

                let fromRedis = try await redis.reader.currentOdds(eventId: event)
                let fromPostgres = try await pg.reader.currentOdds(eventId: event)
                let combined = OddsReadModel.newestPerMarket(fromRedis, fromPostgres)
                // Per market the higher version; on a tie the primary (Redis) value.
                #expect(combined == [inRedis[0], inPostgres[1], inRedis[2], inPostgres[2]])
                #expect(OddsReadModel.newestPerMarket(fromPostgres, fromRedis)
                        == [inRedis[0], inPostgres[1], inPostgres[3], inPostgres[2]])

                // A Redis miss falls back to what PostgreSQL holds.
                let missed = try await redis.reader.currentOdds(eventId: onlyInPostgres)
                #expect(missed.isEmpty)
                #expect(OddsReadModel.newestPerMarket(missed, try await pg.reader.currentOdds(eventId: onlyInPostgres))
                        == [inPostgres[4]])

                let summary = OddsReadModel.summary(eventId: event, markets: combined)
                #expect(summary?.markets == ["1x2", "btts", "dnb", "ou_2_5"])
                #expect(summary?.lastUpdate == inRedis[2].updatedAt)
                #expect(OddsReadModel.summary(eventId: event, markets: []) == nil)

                // The coalescing reader serves PostgreSQL the same way.
                let coalescedPostgres = CoalescingOddsReader(store: pg.reader)
                #expect(try await coalescedPostgres.currentOdds(eventId: event) == fromPostgres)
                #expect(try await coalescedPostgres.currentOdds(eventId: redis.event(2)).isEmpty)
                #expect(try await coalescedPostgres.events(limit: 10) == (try await pg.reader.events(limit: 10)))
                #expect(try await coalescedPostgres.events(limit: 10).map(\.eventId).sorted() == [event, onlyInPostgres].sorted())
            }
        }
    }
}
