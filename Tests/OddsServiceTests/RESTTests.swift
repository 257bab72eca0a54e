import Contracts
import Foundation
import IntegrationSupport
import Redis
import SocketSupport
import Testing
@testable import OddsService

@Suite("REST API against real Redis and PostgreSQL", .timeLimit(.minutes(3)))
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

    /// Hot reads come from the in-memory mirror, which follows every published update and is
    /// never used across a Redis reconnect (messages published meanwhile are lost).
    @Test func hotReadsFollowBroadcastsAndAreReadAgainAfterAReconnect() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("MIR")
        func versions() async throws -> [String: Int64] {
            let markets = try await service.get("/v1/events/\(event)/odds").decode(EventOddsResponse.self).markets
            return Dictionary(uniqueKeysWithValues: markets.map { ($0.market, $0.version) })
        }
        try await service.seeder.write(Fixtures.update(event, version: 1))
        #expect(try await versions() == ["1x2": 1])
        for version in 2...20 { try await service.seeder.write(Fixtures.update(event, version: Int64(version))) }
        try await service.seeder.write(Fixtures.update(event, "btts", version: 3))
        let followed = try await TestInfrastructure.waitUntil { try await versions() == ["1x2": 20, "btts": 3] }
        #expect(followed, "waited for REST to show 1x2 v20 and btts v3 after they were published")
        #expect(service.metrics.mirrorHits.load(ordering: .relaxed) > 0, "no read was answered from the mirror")

        // Redis restarts: whatever the mirror held is read from Redis again.
        await service.stopRedis()
        try await service.redisServer.start()
        let resubscribed = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) {
            service.metrics.resyncs.load(ordering: .relaxed) >= 1
        }
        #expect(resubscribed, "waited for the subscription to come back after the Redis restart")
        // Written without a message, as if published while the subscription was down.
        try await service.seeder.write(Fixtures.update(event, version: 21), publish: false)
        try await service.seeder.write(Fixtures.update(event, "btts", version: 4), publish: false)
        let reread = try await TestInfrastructure.waitUntil { try await versions() == ["1x2": 21, "btts": 4] }
        #expect(reread, "REST still showed what the mirror held before the reconnect")
        try await service.seeder.write(Fixtures.update(event, version: 22))
        let live = try await TestInfrastructure.waitUntil { try await versions() == ["1x2": 22, "btts": 4] }
        #expect(live, "waited for REST to show the update published after the reconnect")
    }

    /// Keep-alive reads of a mirrored event are answered on the event loop with the router's
    /// status, headers and body; requests behind one the router handles wait their turn.
    @Test func hotReadsOnKeepAliveConnectionsMatchTheRouterAndKeepTheirOrder() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("HOT")
        try await service.seeder.write(Fixtures.update(event, version: 3))
        try await service.seeder.write(Fixtures.update(event, "btts", version: 2))
        let odds = "GET /v1/events/\(event)/odds HTTP/1.1\r\nHost: test\r\n\r\n"
        let oddsThenClose = "GET /v1/events/\(event)/odds HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        let markets = "GET /v1/events/\(event)/markets HTTP/1.1\r\nHost: test\r\n\r\n"
        // Through the router (Connection: close), which also loads the mirror.
        let routed = try await HTTP.exchange(port: service.httpPort, oddsThenClose)
        #expect(routed.status == 200)
        #expect(service.metrics.answeredOnEventLoop.load(ordering: .relaxed) == 0)

        let first = try await HTTP.exchangePipelined(port: service.httpPort, odds + odds + markets + oddsThenClose, answers: 4)
        #expect(service.metrics.answeredOnEventLoop.load(ordering: .relaxed) >= 1, "no request was answered on the event loop")
        let second = try await HTTP.exchangePipelined(port: service.httpPort, markets + odds + oddsThenClose, answers: 3)
        for (index, answer) in (first + second).enumerated() where index != 2 && index != 4 {
            #expect(answer.status == 200, "answer \(index)")
            #expect(answer.body == routed.body, "answer \(index) differs from the router's")
            for name in ["content-type", "content-length", "server"] {
                #expect(answer.header(name) == routed.header(name), "answer \(index): \(name)")
            }
            #expect(answer.header("date")?.hasSuffix(" GMT") == true, "answer \(index): date")
        }
        for answer in [first[2], second[0]] {
            #expect(try JSONDecoder().decode(MarketListResponse.self, from: Data(answer.body)).markets.map(\.market) == ["1x2", "btts"])
        }
        // A newer version published now is what the next keep-alive read shows.
        try await service.seeder.write(Fixtures.update(event, version: 4))
        let followed = try await TestInfrastructure.waitUntil {
            let answer = try await HTTP.exchangePipelined(port: service.httpPort, odds + oddsThenClose, answers: 2)[0]
            return try JSONDecoder().decode(EventOddsResponse.self, from: Data(answer.body)).markets.first?.version == 4
        }
        #expect(followed, "waited for a keep-alive read to show 1x2 v4")
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

    /// Clients that encode path and query parameters (encodeURIComponent, generated OpenAPI
    /// clients) reach the same events: parameters are percent-decoded once, then checked.
    @Test func percentEncodedParametersAreDecodedOnce() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let colon = "br.serie-a:2026:r38:fla-pal"  // the document's own example id
        let plain = Fixtures.eventId("PCT")
        for event in [colon, plain] {
            let updates = [Fixtures.update(event, version: 1), Fixtures.update(event, version: 2)]
            try await service.database.seed(updates)
            try await service.seeder.write(updates[1], publish: false)
        }
        let encodedColon = "br.serie-a%3A2026%3Ar38%3Afla-pal"
        let encodedPlain = plain.replacingOccurrences(of: "_", with: "%5F")
        let found: [(String, String)] = [
            ("/v1/events/\(encodedColon)/odds", colon), ("/v1/events/br.serie-a%3a2026%3ar38%3afla-pal/odds", colon),
            ("/v1/events/\(colon)/odds", colon), ("/v1/events/\(encodedColon)/markets", colon),
            ("/v1/events/\(encodedColon)/odds/history?market=1x2", colon), ("/v1/events/\(encodedPlain)/odds", plain),
            ("/v1/events/\(encodedPlain)/odds/history?%6Darket=%31x2&limit=%31", plain),
            ("/v1/%65vents/\(plain)/markets", plain),  // an escaped unreserved character in a fixed segment
        ]
        for (path, event) in found {
            let answer = try await service.get(path)
            #expect(answer.status == 200, "\(path): \(answer.text)")
            #expect(answer.text.contains("\"eventId\":\"\(event)\""), "\(path): \(answer.text)")
        }
        let history = try await service.get("/v1/events/\(encodedPlain)/odds/history?market=1%78%32&limit=%31")
            .decode(OddsHistoryResponse.self)
        #expect(history.market == "1x2")
        #expect(history.history.map(\.version) == [2])
        #expect(try await service.get("/v1/events?limit=%31").decode(EventListResponse.self).events.count == 1)

        let refused: [(String, Int, String)] = [
            ("/v1/events/a%3Ab/odds", 404, "event_not_found"),  // decoded (a:b), valid, unknown
            ("/v1/events/%ZZ/odds", 400, "invalid_event_id"),  // malformed escape
            ("/v1/events/MATCH%5/odds", 400, "invalid_event_id"),
            ("/v1/events/MATCH%255F001/odds", 400, "invalid_event_id"),  // decoded once: "MATCH%5F001"
            ("/v1/events/a%2Fb/odds", 400, "invalid_event_id"),  // "a/b"
            ("/v1/events/\(encodedPlain)/odds/history?market=%G1", 400, "invalid_market"),
            ("/v1/events/\(encodedPlain)/odds/history?market=1x2&limit=1%", 400, "invalid_limit"),
            ("/v1/events?li%ZZmit=1", 400, "bad_request"),
        ]
        for (path, status, code) in refused {
            let answer = try await service.get(path)
            #expect(answer.status == status, "\(path): \(answer.text)")
            #expect(answer.errorCode == code, "\(path): \(answer.text)")
        }
    }

    /// The WebSocket upgrade path is normalized like the REST routes: `/ws/%6Fdds` is `/ws/odds`.
    @Test func webSocketUpgradePathIsNormalizedLikeRoutes() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let upgrade = { (path: String) in
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        }
        let accepted = try await HTTP.exchange(port: service.httpPort, upgrade("/ws/%6Fdds"), untilHeadersEnd: true)
        #expect(accepted.status == 101, "\(accepted.head)")
        let client = try await WSTestClient.connect("ws://127.0.0.1:\(service.httpPort)/ws/%6fdds")
        defer { Task { await client.close() } }
        try await client.send(#"{"type":"ping"}"#)
        #expect(try await client.waitFor(where: \.isPong).count == 1)
        // A reserved escape is not the path separator: no such endpoint.
        let elsewhere = try await HTTP.exchange(port: service.httpPort, upgrade("/ws%2Fodds"))
        #expect(elsewhere.status == 404, "\(elsewhere.head)")
        #expect(elsewhere.text.contains("\"code\":\"not_found\""), "\(elsewhere.text)")
    }

    /// A documented path asked with a method it does not declare is 405 with Allow and the JSON
    /// error shape, on the public port and on the operations port; HEAD works wherever GET does.
    @Test func undeclaredMethodsAre405WithAllow() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let publicPaths = ["/v1/events", "/v1/events/MATCH_001/markets", "/v1/events/MATCH_001/odds",
                           "/v1/events/MATCH_001/odds/history", "/", "/openapi.yaml", "/ws/odds"]
        let targets = publicPaths.map { (service.httpPort, $0, "GET, HEAD") }
            + ["/healthz", "/readyz", "/metrics"].map { (service.metricsPort, $0, "GET") }
        for (port, path, allow) in targets {
            for method in ["TRACE", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "QUERY"] {
                let answer = try await HTTP.exchange(port: port, "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "Content-Length: 0\r\nConnection: close\r\n\r\n")
                #expect(answer.status == 405, "\(method) \(path): \(answer.head)")
                #expect(answer.header("allow") == allow, "\(method) \(path): \(answer.head)")
                #expect(answer.header("content-type") == "application/json", "\(method) \(path)")
                let error = try? JSONDecoder().decode(APIErrorResponse.self, from: Data(answer.body))
                #expect(error?.error.code == "method_not_allowed", "\(method) \(path): \(answer.text)")
                #expect(error?.error.message.isEmpty == false)
            }
        }
        let unknown = try await HTTP.exchange(port: service.httpPort, "TRACE /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(unknown.status == 404)
        #expect(unknown.header("allow") == nil)
        #expect(unknown.text.contains("\"code\":\"not_found\""), "\(unknown.text)")
        let head = try await HTTP.exchange(port: service.httpPort, "HEAD /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(head.status == 200, "\(head.head)")
        #expect(head.body.isEmpty)
    }

    /// GET /openapi.yaml is the contract made self-contained, sent as YAML.
    @Test func servedDocumentIsSelfContained() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let answer = try await service.get("/openapi.yaml")
        #expect(answer.status == 200)
        #expect(answer.contentType == "application/yaml")
        let path = ServiceTestDatabase.repositoryRoot.appendingPathComponent("contracts/openapi.yaml").path
        #expect(answer.text == (try OpenAPIBundle.load(path: path)))
        #expect(!answer.text.contains("$ref: './"))
        #expect(OpenAPIBundle.firstExternalRef(in: answer.text) == nil)
        #expect(answer.text.contains("$ref: '#/components/schemas/odds-update.v1.properties.event_id'"))
    }

    /// schemathesis, every check, against the document the running service serves (all 9
    /// operations: public port, and the operations port through their path-level servers), then
    /// scripts/check_openapi.py for what schemathesis does not check (the served document is the
    /// contract; every operation answered 2xx). The seeded events are the document's own example
    /// ids, so generated requests find them.
    @Test(.timeLimit(.minutes(10)))
    func implementationAnswersAsTheOpenAPIDocumentSays() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let t0 = Timestamp(millisecondsSinceEpoch: 1_790_000_000_000)
        // Every effective status is answered: MATCH_001's feed is down (feed_down), the other
        // event's feed is open, with one market suspended by the supplier.
        for (event, source) in [("MATCH_001", "test"), ("br.serie-a:2026:r38:fla-pal", "other-feed")] {
            var updates = [Fixtures.update(event, version: 1, updatedAt: t0), Fixtures.update(event, version: 2, price: 2.5, updatedAt: t0),
                           Fixtures.update(event, "ou_2_5", version: 1, updatedAt: t0,
                                           status: source == "test" ? .open : .suspended),
                           Fixtures.update(event, "btts", version: 3, updatedAt: t0)]
            for index in updates.indices { updates[index].source = source }
            try await service.database.seed(updates)
            for update in updates where update.version > 1 || update.market == "ou_2_5" {
                try await service.seeder.write(update, publish: false)
            }
        }
        let down = FeedStatus.suspended(feed: "test", detail: "supplier_silent", since: t0)
        _ = try await service.redis.hset(RedisKeys.feedStatus, field: "test", to: Array(down.jsonData()))
        _ = try await service.redis.publish(Array(down.jsonData()), to: RedisKeys.feedStatusChannel)
        let suspended = try await TestInfrastructure.waitUntil { service.app.hub.board.status(of: "test")?.isSuspended == true }
        #expect(suspended, "waited for odds-service to take the feed overlay")
        let shown = try await service.get("/v1/events/MATCH_001/markets").decode(MarketListResponse.self)
        #expect(shown.markets.allSatisfy { $0.statusReason == .feedDown })

        let root = ServiceTestDatabase.repositoryRoot
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("schemathesis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        // The operations of the metrics port name it in a server variable (default 9095).
        let configuration = scratch.appendingPathComponent("schemathesis.toml")
        try """
        [servers]
        variables = { host = "127.0.0.1", metricsPort = "\(service.metricsPort)" }

        """.write(to: configuration, atomically: true, encoding: .utf8)
        let har = scratch.appendingPathComponent("run.har.json")
        let python = URL(fileURLWithPath: "/usr/bin/env")
        // Run in the scratch folder: schemathesis and Hypothesis keep caches in the working directory.
        let run = try await ManagedProcess.run(python, arguments: [
            "-C", scratch.path, "python3", "-m", "schemathesis.cli", "--config-file", configuration.path,
            "run", "http://127.0.0.1:\(service.httpPort)/openapi.yaml",
            // The operation serving the document is left out unless a filter names it.
            "--include-method", "GET",
            "--checks", "all", "--max-examples", "50", "--request-timeout", "10", "--seed", "20261201",
            "--workers", "1", "--generation-database", "none", "--no-color",
            "--report", "har", "--report-har-path", har.path,
        ], environment: ["PYTHONDONTWRITEBYTECODE": "1"], timeout: .seconds(480))
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("9 selected / 9 total"), "\(run.output)")
        #expect(run.output.contains("No issues found"), "\(run.output)")

        let check = try await ManagedProcess.run(python, arguments: [
            "python3", root.appendingPathComponent("scripts/check_openapi.py").path,
            "--base-url", "http://127.0.0.1:\(service.httpPort)", "--har", har.path, "--root", root.path,
        ], timeout: .seconds(60))
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("openapi: 2 passed, 0 failed"), "\(check.output)")
    }
}

