import Contracts
import Foundation
import IntegrationSupport
import Testing
@testable import OddsService

@Suite("REST API against real Redis and PostgreSQL")
struct RESTTests {
    @Test func endpointsAnswerFromRedisAndHistoryFromPostgres() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("REST")
        let t0 = Timestamp(millisecondsSinceEpoch: 1_790_000_000_000)
        let history = (1...5).map {
            Fixtures.update(event, version: Int64($0), price: 2.0 + Double($0) / 100,
                            updatedAt: Timestamp(millisecondsSinceEpoch: t0.millisecondsSinceEpoch + Int64($0)))
        }
        try await service.database.seed(history)
        try await service.seeder.write(history[4], publish: false)
        let btts = Fixtures.update(event, "btts", version: 2, updatedAt: Timestamp(millisecondsSinceEpoch: t0.millisecondsSinceEpoch + 9))
        try await service.seeder.write(btts, publish: false)

        let list = try await service.get("/v1/events")
        #expect(list.status == 200)
        #expect(list.contentType == "application/json")
        let events = try list.decode(EventListResponse.self).events
        #expect(events.map(\.eventId) == [event])
        #expect(events.first?.markets == ["1x2", "btts"])
        #expect(events.first?.lastUpdate == btts.updatedAt)

        let markets = try await service.get("/v1/events/\(event)/markets").decode(MarketListResponse.self)
        #expect(markets.markets.map(\.market) == ["1x2", "btts"])
        #expect(markets.markets.map(\.version) == [5, 2])

        let odds = try await service.get("/v1/events/\(event)/odds")
        #expect(odds.status == 200)
        let current = try odds.decode(EventOddsResponse.self)
        #expect(current.homeTeam == "Flamengo")
        #expect(current.markets == [MarketOdds(history[4]), MarketOdds(btts)])

        let newestFirst = try await service.get("/v1/events/\(event)/odds/history?market=1x2").decode(OddsHistoryResponse.self)
        #expect(newestFirst.history.map(\.version) == [5, 4, 3, 2, 1])
        #expect(newestFirst.history.first?.odds == history[4].odds)
        #expect(newestFirst.history.first?.updatedAt == history[4].updatedAt)
        let limited = try await service.get("/v1/events/\(event)/odds/history?market=1x2&limit=2").decode(OddsHistoryResponse.self)
        #expect(limited.history.map(\.version) == [5, 4])
        let otherMarket = try await service.get("/v1/events/\(event)/odds/history?market=ou_2_5").decode(OddsHistoryResponse.self)
        #expect(otherMarket.history.isEmpty)
    }

    @Test func postgresFallbackNeverOlderThanRedis() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let onlyInPostgres = Fixtures.eventId("PG")
        try await service.database.seed([Fixtures.update(onlyInPostgres, version: 7), Fixtures.update(onlyInPostgres, "btts", version: 2)])
        // Redis does not know the event: PostgreSQL answers.
        let fromPostgres = try await service.get("/v1/events/\(onlyInPostgres)/odds").decode(EventOddsResponse.self)
        #expect(fromPostgres.markets.map(\.version) == [7, 2])
        #expect(try await service.get("/v1/events").decode(EventListResponse.self).events.map(\.eventId) == [onlyInPostgres])

        // Redis is ahead of PostgreSQL: Redis wins.
        let ahead = Fixtures.eventId("AHEAD")
        try await service.database.seed([Fixtures.update(ahead, version: 3)])
        try await service.seeder.write(Fixtures.update(ahead, version: 9), publish: false)
        #expect(try await service.get("/v1/events/\(ahead)/odds").decode(EventOddsResponse.self).markets.map(\.version) == [9])

        // Redis down: PostgreSQL answers, readiness turns false.
        await service.stopRedis()
        let duringOutage = try await service.get("/v1/events/\(onlyInPostgres)/odds")
        #expect(duringOutage.status == 200)
        #expect(try duringOutage.decode(EventOddsResponse.self).markets.map(\.version) == [7, 2])
        let ready = try await service.get("/readyz", port: service.metricsPort)
        #expect(ready.status == 503)
        #expect(try await service.get("/v1/events/NOPE_1/odds").status == 404)
    }

    @Test func errorsUseTheJSONShape() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("ERR")
        try await service.database.seed([Fixtures.update(event, version: 1)])
        try await service.seeder.write(Fixtures.update(event, version: 1), publish: false)
        let cases: [(String, Int, String)] = [
            ("/v1/events/bad%20id/odds", 400, "invalid_event_id"),
            ("/v1/events/\(String(repeating: "x", count: 65))/markets", 400, "invalid_event_id"),
            ("/v1/events/a$b/odds", 400, "invalid_event_id"),
            ("/v1/events/UNKNOWN_EVENT/odds", 404, "event_not_found"),
            ("/v1/events/UNKNOWN_EVENT/markets", 404, "event_not_found"),
            ("/v1/events/UNKNOWN_EVENT/odds/history?market=1x2", 404, "event_not_found"),
            ("/v1/events/\(event)/odds/history", 400, "invalid_market"),
            ("/v1/events/\(event)/odds/history?market=1X2", 400, "invalid_market"),
            ("/v1/events/\(event)/odds/history?market=1x2&limit=0", 400, "invalid_limit"),
            ("/v1/events/\(event)/odds/history?market=1x2&limit=1001", 400, "invalid_limit"),
            ("/v1/events/\(event)/odds/history?market=1x2&limit=abc", 400, "invalid_limit"),
            ("/v1/events?limit=0", 400, "invalid_limit"),
            ("/v1/events?limit=5000", 400, "invalid_limit"),
            ("/v1/nothing-here", 404, "not_found"),
        ]
        for (path, status, code) in cases {
            let answer = try await service.get(path)
            #expect(answer.status == status, "\(path)")
            #expect(answer.contentType == "application/json", "\(path)")
            #expect(answer.errorCode == code, "\(path): \(answer.text)")
        }
    }

    @Test func operationsEndpointsAndOpenAPIDocument() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        #expect(try await service.get("/healthz", port: service.metricsPort).status == 200)
        let ready = try await service.get("/readyz", port: service.metricsPort)
        #expect(ready.status == 200, "\(ready.text)")
        _ = try await service.get("/v1/events/NOPE_2/odds")
        let metrics = try await service.get("/metrics", port: service.metricsPort).text
        for name in ["odds_ws_connections", "odds_ws_subscriptions", "odds_service_rest_latency_seconds",
                     "odds_ws_frames_sent_total", "odds_ws_conflated_total", "odds_ws_stale_dropped_total",
                     "odds_ws_slow_closes_total"] {
            #expect(metrics.contains(name), "\(name) missing from /metrics")
        }
        let document = try await service.get("/openapi.yaml")
        #expect(document.status == 200)
        #expect(document.text.hasPrefix("openapi: 3.1"))
    }

    /// scripts/check_openapi.py validates every answer against contracts/openapi.yaml.
    @Test func implementationAnswersAsTheOpenAPIDocumentSays() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("OAS")
        let updates = [Fixtures.update(event, version: 1), Fixtures.update(event, version: 2, price: 2.5),
                       Fixtures.update(event, "ou_2_5", version: 1)]
        try await service.database.seed(updates)
        for update in updates { try await service.seeder.write(update, publish: false) }

        let root = ServiceTestDatabase.repositoryRoot
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", root.appendingPathComponent("scripts/check_openapi.py").path,
                             "--base-url", "http://127.0.0.1:\(service.httpPort)",
                             "--metrics-url", "http://127.0.0.1:\(service.metricsPort)",
                             "--event", event, "--market", "1x2", "--root", root.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = try await onThread {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("openapi: "), "\(text)")
    }
}
