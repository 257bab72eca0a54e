import Contracts
import Foundation
import IntegrationSupport
import NIOWebSocket
import Redis
import Testing
@testable import OddsService

@Suite("WebSocket /ws/odds with real clients, Redis and PostgreSQL", .timeLimit(.minutes(3)))
struct WebSocketTests {
    func subscribe(_ client: WSTestClient, _ eventIds: [String], versions: [String: Int64] = [:]) async throws {
        var frame: [String: Any] = ["type": "subscribe", "eventIds": eventIds]
        if !versions.isEmpty { frame["versions"] = versions }
        try await client.send(String(decoding: try JSONSerialization.data(withJSONObject: frame), as: UTF8.self))
    }

    @Test func snapshotThenOrderedDeltasAndStaleDropped() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("WS")
        try await service.seeder.write(Fixtures.update(event, version: 1), publish: false)
        try await service.seeder.write(Fixtures.update(event, "btts", version: 4), publish: false)

        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        try await client.send(#"{"type":"subscribe","eventId":"\#(event)"}"#)
        let snapshot = try await client.waitFor { $0.isSnapshot }.first?.snapshotMarkets
        #expect(snapshot?.map(\.market) == ["1x2", "btts"])
        #expect(snapshot?.map(\.version) == [1, 4])

        for version in 2...30 { try await service.seeder.write(Fixtures.update(event, version: Int64(version))) }
        // Stale and duplicate versions on the channel never reach the client.
        try await service.seeder.publishOnly(Fixtures.update(event, version: 10))
        try await service.seeder.publishOnly(Fixtures.update(event, version: 30))
        try await service.seeder.publishOnly(Fixtures.update(event, "btts", version: 3))
        try await service.seeder.write(Fixtures.update(event, "btts", version: 5))
        let deltas = try await client.waitFor(30) { $0.isOdds }
        try await Task.sleep(for: .milliseconds(200))
        let all = client.messages.compactMap(\.oddsPayload)
        #expect(all.filter { $0.market == "1x2" }.map(\.version) == Array(2...30))
        #expect(all.filter { $0.market == "btts" }.map(\.version) == [5])
        #expect(deltas.count == 30)
        #expect(client.messages.first?.isSnapshot == true)
        #expect(service.metrics.staleDropped.load(ordering: .relaxed) >= 3)
    }

    @Test func resumeSendsOnlyNewerMarketsAndUnsubscribeStopsDeltas() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let first = Fixtures.eventId("RES")
        let second = Fixtures.eventId("RES")
        for update in [Fixtures.update(first, version: 41), Fixtures.update(first, "btts", version: 10),
                       Fixtures.update(first, "ou_2_5", version: 3), Fixtures.update(second, version: 41)] {
            try await service.seeder.write(update, publish: false)
        }
        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        try await subscribe(client, [first, second], versions: ["1x2": 41, "btts": 9])
        let snapshots = try await client.waitFor(2) { $0.isSnapshot }
        let byEvent = Dictionary(uniqueKeysWithValues: snapshots.compactMap { message -> (String, [OddsUpdate])? in
            if case .snapshot(let eventId, let markets, _) = message { return (eventId, markets) }
            return nil
        })
        #expect(byEvent[first]?.map(\.market) == ["btts", "ou_2_5"])
        #expect(byEvent[second]?.isEmpty == true)

        // Deltas not newer than the resume versions are dropped too.
        try await service.seeder.publishOnly(Fixtures.update(second, version: 40))
        try await service.seeder.write(Fixtures.update(second, version: 42))
        try await client.waitFor { $0.oddsPayload?.eventId == second }
        #expect(client.messages.compactMap(\.oddsPayload).map(\.version) == [42])

        try await client.send(#"{"type":"unsubscribe","eventId":"\#(second)"}"#)
        try await client.send(#"{"type":"ping"}"#)
        try await client.waitFor { $0.isPong }
        try await service.seeder.write(Fixtures.update(second, version: 43))
        try await service.seeder.write(Fixtures.update(first, version: 42))
        try await client.waitFor { $0.oddsPayload?.eventId == first }
        #expect(!client.messages.compactMap(\.oddsPayload).contains { $0.eventId == second && $0.version == 43 })
    }

    @Test func badFramesGetErrorFramesAndTheConnectionSurvives() async throws {
        let service = try await RunningService.start(environment: ["WS_MAX_FRAME_BYTES": "256"])
        defer { Task { await service.stop() } }
        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        let bad = [
            "not json", "[1,2]", #"{"type":42}"#, #"{"type":"dance"}"#, #"{"type":"subscribe"}"#,
            #"{"type":"subscribe","eventId":"bad id!"}"#, #"{"type":"subscribe","eventIds":"x"}"#,
            #"{"type":"subscribe","eventId":"E","versions":{"1x2":-1}}"#,
            #"{"type":"subscribe","eventId":"\#(String(repeating: "A", count: 300))"}"#,
        ]
        for frame in bad { try await client.send(frame) }
        try await client.sendBinary([1, 2, 3])
        let errors = try await client.waitFor(bad.count + 1) { $0.errorCode != nil }
        #expect(errors.count == bad.count + 1)
        let codes = errors.compactMap(\.errorCode)
        #expect(codes.contains("bad_frame"))
        #expect(codes.contains("unknown_type"))
        #expect(codes.contains("invalid_event_id"))
        #expect(codes.contains("frame_too_large"))
        try await client.send(#"{"type":"ping"}"#)
        try await client.waitFor { $0.isPong }
        #expect(!client.isFinished)
    }

    @Test func heartbeatWhenIdle() async throws {
        let service = try await RunningService.start(environment: ["WS_HEARTBEAT_MS": "200"])
        defer { Task { await service.stop() } }
        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        let beats = try await client.waitFor(2, timeout: .seconds(5)) { $0.isHeartbeat }
        #expect(beats.count >= 2)
        #expect(client.received.first?.text == #"{"type":"heartbeat"}"#)
    }

    @Test func subscriptionAndRateLimits() async throws {
        let service = try await RunningService.start(environment: [
            "WS_MAX_SUBSCRIPTIONS": "3", "WS_MAX_MESSAGES_PER_SECOND": "5",
        ])
        defer { Task { await service.stop() } }
        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        try await subscribe(client, ["A1", "A2"])
        try await subscribe(client, ["A3", "A4"])
        try await client.waitFor { $0.errorCode == "too_many_subscriptions" }
        #expect(service.hub.allConnections().first?.subscriptions == ["A1", "A2"])

        // Burst of 5 allowed per second; the rest get rate_limited error frames.
        try await Task.sleep(for: .milliseconds(1100))
        // However long the burst takes on a busy machine, every ping gets one answer, and the
        // tokens refilled meanwhile cannot cover twelve.
        for _ in 0..<12 { try await client.send(#"{"type":"ping"}"#) }
        let answered = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            client.messages.filter { $0.isPong || $0.errorCode == "rate_limited" }.count >= 12
        }
        #expect(answered, "not every ping of the burst was answered: \(client.messages.count) messages")
        let limited = client.messages.filter { $0.errorCode == "rate_limited" }
        #expect(limited.count >= 1, "a burst of 12 over a limit of 5/s got no rate_limited answer")
        #expect(!client.isFinished)
        let pongsBefore = client.messages.filter(\.isPong).count
        try await Task.sleep(for: .milliseconds(1100))
        try await client.send(#"{"type":"ping"}"#)
        try await client.waitFor(pongsBefore + 1, timeout: .seconds(20)) { $0.isPong }
        #expect(client.messages.filter(\.isPong).count == pongsBefore + 1, "after a quiet second a ping is answered again")

        // A flood is abusive: the connection is closed with 1008 (policy violation).
        let flooder = try await WSTestClient.connect(service.wsURL)
        defer { Task { await flooder.close() } }
        for _ in 0..<120 { try? await flooder.send(#"{"type":"ping"}"#) }
        #expect(try await flooder.waitUntilFinished())
        #expect(flooder.closeCode == .policyViolation)
    }

    @Test func connectionLimit() async throws {
        let service = try await RunningService.start(environment: ["WS_MAX_CONNECTIONS": "2"])
        defer { Task { await service.stop() } }
        let first = try await WSTestClient.connect(service.wsURL)
        let second = try await WSTestClient.connect(service.wsURL)
        defer { Task { await first.close(); await second.close() } }
        _ = try await TestInfrastructure.waitUntil { service.hub.connectionCount == 2 }
        // The third upgrade is refused with 503 too_many_connections.
        await #expect(throws: (any Error).self) { _ = try await WSTestClient.connect(service.wsURL) }
        let refused = try await service.get("/ws/odds")
        #expect(refused.status == 503)
        #expect(refused.errorCode == "too_many_connections")
        // Past the check (a race), the hub refuses and the socket is closed with 4013.
        #expect(service.hub.open(channel: nil) == nil)
        try await first.send(#"{"type":"ping"}"#)
        try await first.waitFor { $0.isPong }
    }

    @Test func refusedUpgradesGetAClearAnswer() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let upgrade: @Sendable (String) -> String = { path in
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        }
        let port = service.httpPort
        let elsewhere = try await HTTP.exchange(port: port, upgrade("/ws/other"))
        #expect(elsewhere.status == 404)
        #expect(elsewhere.text.contains(#""code":"not_found""#), "\(elsewhere.text)")
        // A plain request after the upgrade path still reaches the router.
        let plain = try await service.get("/ws/odds")
        #expect(plain.status == 400)
        #expect(plain.errorCode == "upgrade_required")
    }

    @Test func deadPeerIsDetectedAndCleanedUp() async throws {
        let service = try await RunningService.start(environment: ["WS_PING_MS": "300"])
        defer { Task { await service.stop() } }
        // A client that never reads never answers pings.
        let silent = try await WSTestClient.connect(service.wsURL, reading: false)
        defer { Task { await silent.close() } }
        _ = try await TestInfrastructure.waitUntil { service.hub.connectionCount == 1 }
        let cleaned = try await TestInfrastructure.waitUntil(timeout: .seconds(5)) { service.hub.connectionCount == 0 }
        #expect(cleaned)
        #expect(service.metrics.connections.load(ordering: .relaxed) == 0)
    }

    /// A client that stops reading does not delay a fast one; it ends conflated, then closed 4000.
    @Test func slowConsumerDoesNotDelayOthers() async throws {
        let service = try await RunningService.start(environment: [
            "WS_QUEUE_LIMIT": "64", "WS_QUEUE_HARD_LIMIT": "256", "WS_SEND_TIMEOUT_MS": "1500",
        ])
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("SLOW")
        try await service.seeder.write(Fixtures.update(event, version: 1), publish: false)
        let slow = try await WSTestClient.connect(service.wsURL, reading: false)
        let fast = try await WSTestClient.connect(service.wsURL)
        defer { Task { await slow.close(); await fast.close() } }
        try await subscribe(slow, [event])
        try await subscribe(fast, [event])
        try await fast.waitFor { $0.isSnapshot }
        _ = try await TestInfrastructure.waitUntil { service.hub.allConnections().allSatisfy { $0.subscriptions.count == 1 } }

        // Large frames (64 KiB team names) fill the stalled socket's buffers quickly.
        let big = String(repeating: "X", count: 64 * 1024)
        let markets = ["1x2", "btts", "ou_2_5"]
        for version in 2...400 {
            let update = Fixtures.update(event, markets[version % 3], version: Int64(version), home: big)
            try await service.seeder.write(update)
            if version % 50 == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        let delivered = try await fast.waitFor(399, timeout: .seconds(60)) { $0.isOdds }
        // Behaviour, not speed: the fast client got every update, in order, while the stalled
        // one was conflated or closed (its publish-to-receive latency is a bench figure:
        // `make bench-odds-service`).
        #expect(delivered.count == 399, "fast client got \(delivered.count) of 399 updates")
        let fastVersions = delivered.compactMap(\.oddsPayload).map(\.version)
        #expect(fastVersions == Array(2...400).map(Int64.init), "fast client versions out of order or missing")

        let slowHandled = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            service.metrics.slowCloses.load(ordering: .relaxed) >= 1 || service.metrics.conflated.load(ordering: .relaxed) > 0
        }
        #expect(slowHandled, "the stalled client was neither conflated nor closed within 30 s")
        // Once it reads again it sees what was sent: then either the 4000 close frame, or (it
        // was conflated, not closed) the newest version of every market.
        slow.resumeReading()
        let newest: [String: Int64] = ["ou_2_5": 398, "1x2": 399, "btts": 400]
        let settled = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            slow.isFinished || newest.allSatisfy { market, version in
                slow.messages.compactMap(\.oddsPayload).contains { $0.market == market && $0.version == version }
            }
        }
        #expect(settled, "the stalled client, reading again, neither got its close frame nor caught up within 30 s")
        if slow.isFinished { #expect(slow.closeCode == .unknown(4000) || slow.closeCode == nil) }
        let slowVersions = slow.messages.compactMap(\.oddsPayload).map(\.version)
        #expect(slowVersions.count < 399)
        for market in markets {
            let seen = slow.messages.compactMap(\.oddsPayload).filter { $0.market == market }.map(\.version)
            #expect(seen == seen.sorted() && Set(seen).count == seen.count)
        }
        #expect(!fast.isFinished)
    }

    @Test func redisRestartResyncsSubscribers() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("RST")
        try await service.seeder.write(Fixtures.update(event, version: 5), publish: false)
        try await service.seeder.write(Fixtures.update(event, "btts", version: 2), publish: false)
        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        try await subscribe(client, [event])
        try await client.waitFor { $0.isSnapshot }

        await service.stopRedis()
        try await Task.sleep(for: .milliseconds(1200))
        try await service.redisServer.start()
        // Written while the subscription was down: the processor's publish is lost.
        try await service.seeder.write(Fixtures.update(event, version: 6), publish: false)
        try await service.seeder.write(Fixtures.update(event, "btts", version: 2), publish: false)
        let resynced = try await client.waitFor(timeout: .seconds(15)) { $0.oddsPayload?.version == 6 }
        #expect(resynced.count == 1)
        #expect(service.metrics.resyncs.load(ordering: .relaxed) >= 1)
        // btts v2 was already sent in the snapshot: not sent again.
        #expect(!client.messages.compactMap(\.oddsPayload).contains { $0.market == "btts" })
        // Live deltas flow again.
        try await service.seeder.write(Fixtures.update(event, version: 7))
        try await client.waitFor { $0.oddsPayload?.version == 7 }
    }

    @Test func twoInstancesBothDeliver() async throws {
        let first = try await RunningService.start()
        let second = try await RunningService.start(sharing: first)
        defer { Task { await second.stop(); await first.stop() } }
        let event = Fixtures.eventId("TWO")
        let a = try await WSTestClient.connect(first.wsURL)
        let b = try await WSTestClient.connect(second.wsURL)
        defer { Task { await a.close(); await b.close() } }
        try await subscribe(a, [event])
        try await subscribe(b, [event])
        try await a.waitFor { $0.isSnapshot }
        try await b.waitFor { $0.isSnapshot }
        for version in 1...20 { try await first.seeder.write(Fixtures.update(event, version: Int64(version))) }
        let fromFirst = try await a.waitFor(20) { $0.isOdds }.compactMap(\.oddsPayload).map(\.version)
        let fromSecond = try await b.waitFor(20) { $0.isOdds }.compactMap(\.oddsPayload).map(\.version)
        #expect(fromFirst == Array(1...20))
        #expect(fromSecond == Array(1...20))
    }

    // MARK: feed suspension (the platform status overlay)

    static let feed = "supplier-simulator"

    func market(_ event: String, _ market: String = "1x2", version: Int64, source: String = feed) -> OddsUpdate {
        var update = Fixtures.update(event, market, version: version)
        update.source = source
        return update
    }

    /// As odds-processor does: HSET odds:feed_status, then PUBLISH the same JSON.
    func writeFeedStatus(_ service: RunningService, _ status: FeedStatus, publish: Bool = true) async throws {
        let json = Array(status.jsonData())
        var commands: [[RedisArgument]] = [["HSET", .string(RedisKeys.feedStatus), .string(status.feed), .bytes(json)]]
        if publish { commands.append(["PUBLISH", .string(RedisKeys.feedStatusChannel), .bytes(json)]) }
        for result in try await service.redis.pipeline(commands) { _ = try result.get() }
    }

    func statusFrames(_ client: WSTestClient, _ state: MarketStatus) -> [(eventId: String, status: EventStatus)] {
        client.messages.compactMap(\.statusFrame).filter { $0.status.effectiveStatus == state }
    }

    /// The feed of two followed events goes down, then recovers: REST shows every market of
    /// that feed suspended (feed_down, since) and then open again; a connected subscriber gets
    /// one status frame per followed event each time; one that connects during the outage gets
    /// the suspension in its snapshot; markets of another feed are untouched.
    @Test func feedSuspensionReachesRESTAndSubscribers() async throws {
        let service = try await RunningService.start()
        defer { Task { await service.stop() } }
        let first = Fixtures.eventId("FD")
        let second = Fixtures.eventId("FD")
        let elsewhere = Fixtures.eventId("FD")
        for update in [market(first, version: 3), market(first, "btts", version: 2), market(second, version: 7),
                       market(elsewhere, version: 1, source: "other-feed")] {
            try await service.seeder.write(update, publish: false)
        }
        let early = try await WSTestClient.connect(service.wsURL)
        defer { Task { await early.close() } }
        try await subscribe(early, [first, second, elsewhere])
        let snapshots = try await early.waitFor(3) { $0.isSnapshot }
        #expect(snapshots.count == 3, "waited for the 3 snapshots")
        #expect(snapshots.allSatisfy { $0.snapshotStatus == nil }, "no feed is down yet")

        // The feed goes down.
        let since = Timestamp.now()
        try await writeFeedStatus(service, .suspended(feed: Self.feed, detail: "supplier_silent", since: since))
        let suspensions = try await early.waitFor(2) { $0.statusFrame?.status.effectiveStatus == .suspended }
        #expect(suspensions.count == 2, "waited for one suspension frame per followed event of the feed")
        #expect(Set(suspensions.compactMap(\.statusFrame?.eventId)) == [first, second])
        #expect(suspensions.allSatisfy { $0.statusFrame?.status == .suspended(since: since) })

        // REST: every market of the feed is suspended, the supplier's status is kept.
        let odds = try await service.get("/v1/events/\(first)/odds").decode(EventOddsResponse.self)
        #expect(odds.markets.count == 2)
        for entry in odds.markets {
            #expect(entry.status == .open)
            #expect(entry.effectiveStatus == .suspended && entry.statusReason == .feedDown && entry.statusSince == since)
        }
        let markets = try await service.get("/v1/events/\(second)/markets").decode(MarketListResponse.self)
        #expect(markets.markets.allSatisfy { $0.effectiveStatus == .suspended && $0.statusReason == .feedDown })
        let untouched = try await service.get("/v1/events/\(elsewhere)/odds").decode(EventOddsResponse.self)
        #expect(untouched.markets.allSatisfy { $0.effectiveStatus == .open && $0.statusReason == nil })
        let events = try await service.get("/v1/events").decode(EventListResponse.self).events
        #expect(events.count == 3)
        for event in events {
            if event.eventId == elsewhere {
                #expect(event.effectiveStatus == .open && event.statusReason == nil)
            } else {
                #expect(event.effectiveStatus == .suspended && event.statusReason == .feedDown && event.statusSince == since)
            }
        }
        let metrics = try await service.get("/metrics", port: service.metricsPort).text
        #expect(metrics.contains("odds_feed_suspended"), "gauge odds_feed_suspended missing from /metrics")
        #expect(metrics.contains("odds_ws_suspension_push_latency_seconds"), "push latency timer missing from /metrics")

        // A subscriber that connects during the outage sees it in its snapshot.
        let late = try await WSTestClient.connect(service.wsURL)
        defer { Task { await late.close() } }
        try await subscribe(late, [first])
        let lateSnapshot = try await late.waitFor { $0.isSnapshot }.first
        #expect(lateSnapshot?.snapshotStatus == .suspended(since: since), "the snapshot taken during the outage carries it")
        #expect(lateSnapshot?.snapshotMarkets?.count == 2)

        // The same status again (a reload, a duplicate message) tells nobody anything new;
        // garbage on the channel is counted, not fatal.
        try await writeFeedStatus(service, .suspended(feed: Self.feed, detail: "supplier_silent", since: since))
        try await service.redis.publish(Array("not a feed status".utf8), to: RedisKeys.feedStatusChannel)
        try await service.redis.publish(Array(#"{"feed":"x","state":"closed","since":"2026-11-22T12:01:02.345Z"}"#.utf8),
                                        to: RedisKeys.feedStatusChannel)
        let counted = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) {
            service.metrics.feedStatusesInvalid.load(ordering: .relaxed) >= 2
        }
        #expect(counted, "waited for the two garbage messages to be counted")

        // Recovery: open again, pushed to both.
        let reopened = Timestamp(millisecondsSinceEpoch: since.millisecondsSinceEpoch + 1500)
        try await writeFeedStatus(service, .open(feed: Self.feed, since: reopened))
        let openings = try await early.waitFor(2) { $0.statusFrame?.status.effectiveStatus == .open }
        #expect(openings.count == 2, "waited for one reopening frame per followed event of the feed")
        #expect(openings.allSatisfy { $0.statusFrame?.status == .open(since: reopened) })
        let lateOpen = try await late.waitFor { $0.statusFrame?.status.effectiveStatus == .open }
        #expect(lateOpen.first?.statusFrame?.eventId == first, "the late subscriber is told of the reopening")
        #expect(try await service.get("/v1/events/\(first)/odds").decode(EventOddsResponse.self).markets
            .allSatisfy { $0.effectiveStatus == .open && $0.statusReason == nil && $0.statusSince == nil })

        // Barrier: everything pushed before the pong has arrived.
        try await early.send(#"{"type":"ping"}"#)
        try await early.waitFor { $0.isPong }
        #expect(statusFrames(early, .suspended).count == 2, "one suspension per event, not repeated")
        #expect(statusFrames(early, .open).count == 2)
        #expect(!early.messages.contains { $0.statusFrame?.eventId == elsewhere }, "another feed's event is never told")
        #expect(statusFrames(late, .suspended).isEmpty, "the late subscriber had the suspension in its snapshot")
        // Status frames never come before an event's snapshot.
        for client in [early, late] {
            var snapshotted: Set<String> = []
            for message in client.messages {
                if case .snapshot(let eventId, _, _) = message { snapshotted.insert(eventId) }
                if let frame = message.statusFrame { #expect(snapshotted.contains(frame.eventId)) }
            }
        }
    }

    /// Without a message (lost, or written while odds-service was not subscribed), the overlay is
    /// still read from the hash: at start, and periodically.
    @Test func feedStatusIsReadFromTheHashAtStartAndPeriodically() async throws {
        let service = try await RunningService.start(environment: ["FEED_STATUS_RELOAD_MS": "200"])
        defer { Task { await service.stop() } }
        let event = Fixtures.eventId("FH")
        try await service.seeder.write(market(event, version: 4), publish: false)
        let client = try await WSTestClient.connect(service.wsURL)
        defer { Task { await client.close() } }
        try await subscribe(client, [event])
        try await client.waitFor { $0.isSnapshot }

        let since = Timestamp.now()
        try await writeFeedStatus(service, .suspended(feed: Self.feed, detail: "heartbeat_missing", since: since), publish: false)
        let told = try await client.waitFor(timeout: .seconds(10)) { $0.statusFrame?.status.isSuspended == true }
        #expect(told.count == 1, "waited for the periodic reload to find the suspension")
        #expect(try await service.get("/v1/events/\(event)/markets").decode(MarketListResponse.self).markets
            .allSatisfy { $0.effectiveStatus == .suspended && $0.statusSince == since })

        // A second instance starting during the outage reads it at start.
        let second = try await RunningService.start(sharing: service, environment: ["FEED_STATUS_RELOAD_MS": "600000"])
        defer { Task { await second.stop() } }
        #expect(try await second.get("/v1/events/\(event)/odds").decode(EventOddsResponse.self).markets
            .allSatisfy { $0.effectiveStatus == .suspended && $0.statusReason == .feedDown })
        #expect(second.app.hub.board.status(of: Self.feed)?.isSuspended == true)
    }
}
