import Contracts
import Foundation
import HummingbirdWSClient
import IntegrationSupport
import Logging
import Testing

/// The real supplier-simulator binary over real sockets.
@Suite("supplier-simulator process", .serialized, .timeLimit(.minutes(5)))
struct SupplierProcessTests {
    static func journalPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("supplier-journal-\(UUID().uuidString).jsonl").path
    }

    @Test("two clients each get every journaled frame, in journal order; a graceful stop drains them")
    func broadcastMatchesJournal() async throws {
        let ports = try SupplierProcess.ports()
        let journal = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: journal) }
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "2000", "SUPPLIER_JOURNAL": journal, "SUPPLIER_SEED": "3",
            "SUPPLIER_FAULT_MALFORMED": "0.05", "SUPPLIER_FAULT_INVALID": "0.05",
            "SUPPLIER_FAULT_DUPLICATE": "0.05", "SUPPLIER_FAULT_OUT_OF_ORDER": "0.05",
        ])
        let first = RecordingClient()
        let second = RecordingClient()
        let firstReader = Task { try await first.readUntilClosed(url: ports.feedURL, start: .live) }
        let firstConnected = try await TestInfrastructure.waitUntil { first.oddsCount > 0 }
        #expect(firstConnected, "the first client got no odds frame within 10 s")
        let secondReader = Task { try await second.readUntilClosed(url: ports.feedURL, start: .live) }
        let flowing = try await TestInfrastructure.waitUntil { first.oddsCount > 2_000 && second.oddsCount > 0 }
        #expect(flowing, "the feed did not reach both clients within 10 s: \(first.oddsCount) and \(second.oddsCount) odds frames")
        let metrics = try await HTTP.get("\(ports.metricsURL)/metrics").body
        #expect(MetricsText.value("odds_supplier_connections", in: metrics) == 2)
        #expect(MetricsText.value(#"odds_supplier_frames_sent_total{kind="valid"}"#, in: metrics) > 0)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="live"}"#, in: metrics) == 2)

        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(20)) == 0)
        try await TestInfrastructure.value(of: firstReader, "the first client's connection to end after SIGTERM", timeout: .seconds(30))
        try await TestInfrastructure.value(of: secondReader, "the second client's connection to end after SIGTERM", timeout: .seconds(30))
        let lines = try JournalEntry.read(journal)
        let entries = try JournalEntry.streamFrames(journal)
        // The `initial` lines come first, one per market, at seq 0.
        let initial = lines.prefix { !$0.isStreamFrame }
        #expect(!initial.isEmpty && initial.allSatisfy { $0.seq == 0 })
        #expect(lines.count == initial.count + entries.count, "initial lines only at the start")
        #expect(entries.count > 2_000)
        #expect(entries.map(\.seq) == Array(1...entries.count))
        #expect(Set(entries.map(\.kind)) == ["valid", "duplicate", "out_of_order", "malformed", "invalid"])
        for client in [first, second] {
            #expect(client.connectionCount == 1)
            let connection = try #require(client.connections.first)
            expectWellFormed(connection)
            let hello = try #require(connection.hello)
            #expect(Set(lines.map(\.epoch)) == [hello.position.epoch], "one epoch, the hello's")
            #expect(connection.raw.count == connection.odds.count + 1, "a hello, then odds frames only")
        }
        // The first client saw the feed from its start; the second joined a little later, after
        // the position its hello gave.
        #expect(first.connections.first?.hello?.position.seq == 0)
        expectSameFrames(first.received, entries.map(\.frame))
        let secondStart = Int(try #require(second.connections.first?.hello).position.seq)
        #expect(second.received.count > 0)
        #expect(secondStart + second.received.count == entries.count, "the second client got every frame after its hello")
        expectSameFrames(second.received, Array(entries[secondStart...].map(\.frame)))
    }

    @Test("scheduled disconnects close after the buffered frames: a reconnecting client loses nothing")
    func disconnectsLoseNothing() async throws {
        let ports = try SupplierProcess.ports()
        let journal = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: journal) }
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "3000", "SUPPLIER_JOURNAL": journal, "SUPPLIER_DISCONNECT_EVERY": "0.7",
        ])
        let client = RecordingClient()
        let stopped = LockedCounter()
        let reader = Task { await client.readReconnecting(url: ports.feedURL, resuming: true) { stopped.value > 0 } }
        let reconnected = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) { client.connectionCount >= 4 }
        #expect(reconnected)
        stopped.increment()
        // Longer than the simulator's own shutdown drain (10 s for clients to take what is
        // buffered): on a loaded machine a graceful stop can legitimately use all of it.
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(25)) == 0)
        let entries = try JournalEntry.streamFrames(journal)
        #expect(!entries.isEmpty)
        // The supplier exited after draining: the client reads what is left of its last
        // connection. A connection the server closed while it was being set up can stay
        // half-open in the WebSocket client library (see sigtermWhileClientsReconnect), so the
        // wait is for the frames, and then the reader is cancelled rather than awaited alone.
        let caughtUp = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) { client.oddsCount >= entries.count }
        #expect(caughtUp, "the client read \(client.oddsCount) of the \(entries.count) journaled frames within 30 s of the exit")
        reader.cancel()
        try await TestInfrastructure.value(of: reader, "the reconnecting client to stop once cancelled (was \(client.phase))", timeout: .seconds(30))
        expectSameFrames(client.received, entries.map(\.frame))
        #expect(supplier.output.contains("fault injection: closing every connection"))
        #expect(client.connections.dropFirst().contains { if case .after? = $0.start { true } else { false } },
                "the reconnects asked to resume")
        // Every connection is well formed; each reconnect resumed where the last one ended.
        var next: UInt64 = 1
        for (index, connection) in client.connections.enumerated() where !connection.raw.isEmpty {
            let first = expectWellFormed(connection)
            if case .after? = connection.start {
                #expect(connection.hello?.recovery == .replay, "reconnect \(index): \(String(describing: connection.hello))")
            }
            if let first, !connection.odds.isEmpty { #expect(first == next, "connection \(index) starts at \(first), expected \(next)") }
            if let last = connection.odds.last { next = last.position.seq + 1 }
        }
    }

    @Test("SIGTERM while clients keep connecting: late clients are closed at once, the process exits 0")
    func sigtermWhileClientsReconnect() async throws {
        let ports = try SupplierProcess.ports()
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "2000", "SUPPLIER_DISCONNECT_EVERY": "0.3",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        // Clients that reconnect as fast as they can, as ingest does after every close.
        let stopped = LockedCounter()
        let clients = (0..<3).map { _ in RecordingClient() }
        let readers = clients.map { client in
            Task { await client.readReconnecting(url: ports.feedURL, pause: .milliseconds(5)) { stopped.value > 0 } }
        }
        let churning = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            clients.allSatisfy { $0.connectionCount >= 3 }
        }
        #expect(churning, "clients did not reconnect: \(clients.map(\.connectionCount))")
        // One client reads everything but never answers the close frame, so the drain lasts its
        // whole close-reply wait (5 s): a window in which a new client connects for sure.
        let silent = try StalledWebSocketClient(port: ports.http)
        defer { silent.close() }
        let silentReader = Task { try await silent.readUntilClosed(timeout: .seconds(60)) }
        defer { silentReader.cancel() }
        let stalledCounted = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            MetricsText.value("odds_supplier_connections", in: try await HTTP.get("\(ports.metricsURL)/metrics").body) >= 4
        }
        #expect(stalledCounted, "the silent client was never counted as connected")

        supplier.signal(SIGTERM)
        let draining = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) {
            supplier.output.contains("writing buffered frames before closing")
        }
        #expect(draining, "the supplier never started its shutdown drain: \(supplier.output.suffix(2_000))")
        let late = try StalledWebSocketClient(port: ports.http)
        defer { late.close() }
        // A client that connects during the drain gets a close frame straight away; before the
        // fix it was a live client the drain waited for, and the process did not stop.
        let lateBytes = try await late.readUntilClosed(timeout: .seconds(30))
        #expect(String(decoding: lateBytes, as: UTF8.self).contains("supplier shutting down"),
                "the client that connected during shutdown got no close frame: \(lateBytes.count) bytes")
        let status = await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(30))
        #expect(status == 0, "supplier exit status \(status) (137: still running 30 s after SIGTERM): \(supplier.output.suffix(3_000))")
        #expect(!supplier.output.contains("connections still open after the drain timeout"), "\(supplier.output.suffix(3_000))")
        // The supplier is gone. A client whose last connection the server closed while it was
        // being set up can stay half-open in the WebSocket client library (its socket in
        // CLOSE-WAIT): cancel the readers rather than wait for the library to notice.
        stopped.increment()
        for reader in readers { reader.cancel() }
        for (index, reader) in readers.enumerated() {
            try await TestInfrastructure.value(of: reader, "reconnecting client \(index) to stop once cancelled (was \(clients[index].phase))", timeout: .seconds(30))
        }
    }

    @Test("a client that stops reading is disconnected; another keeps its feed")
    func slowClientIsDisconnected() async throws {
        let ports = try SupplierProcess.ports()
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "5000", "SUPPLIER_CLIENT_BUFFER": "2000",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        let fast = RecordingClient()
        let fastReader = Task { try? await fast.readUntilClosed(url: ports.feedURL) }
        defer { fastReader.cancel() }
        let fastConnected = try await TestInfrastructure.waitUntil { fast.oddsCount > 0 }
        #expect(fastConnected)
        // Completes the WebSocket upgrade, then never reads: its socket fills, then its buffer.
        let slow = try StalledWebSocketClient(port: ports.http)
        defer { slow.close() }
        let disconnected = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            let metrics = try await HTTP.get("\(ports.metricsURL)/metrics").body
            return MetricsText.value("odds_supplier_slow_client_disconnects_total", in: metrics) >= 1
        }
        #expect(disconnected, "\(supplier.output.suffix(2_000))")
        let before = fast.oddsCount
        let keptReceiving = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) { fast.oddsCount > before + 100 }
        #expect(keptReceiving, "the fast client must keep receiving after the slow one was dropped")
        let metrics = try await HTTP.get("\(ports.metricsURL)/metrics").body
        #expect(MetricsText.value("odds_supplier_slow_client_disconnects_total", in: metrics) == 1)
        #expect(MetricsText.value("odds_supplier_connections", in: metrics) == 1)
        #expect(supplier.output.contains("feed client too slow; disconnecting it"))
    }

    @Test("confirm mock, health, readiness and metrics endpoints")
    func httpEndpoints() async throws {
        let ports = try SupplierProcess.ports()
        let supplier = try await SupplierProcess.start(ports)
        defer { supplier.stop() }
        var confirmed = 0
        for index in 0..<200 {
            let (status, body) = try await HTTP.post("http://127.0.0.1:\(ports.http)/supplier/confirm",
                                                     body: #"{"bet_id":"bet-\#(index)","event_id":"MATCH_001","market":"1x2","selection":"home","price":2.15}"#)
            #expect(status == 200)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            #expect(object["bet_id"] as? String == "bet-\(index)")
            switch object["status"] as? String {
            case "confirmed":
                confirmed += 1
                #expect((object["confirmation_id"] as? String)?.hasPrefix("CNF-") == true)
            case "rejected":
                #expect(object["reason"] is String)
            default:
                Issue.record("unexpected answer \(body)")
            }
        }
        #expect(confirmed > 130 && confirmed < 190)
        #expect(try await HTTP.post("http://127.0.0.1:\(ports.http)/supplier/confirm", body: "not json").status == 400)
        #expect(try await HTTP.get("\(ports.metricsURL)/healthz").status == 200)
        #expect(try await HTTP.get("\(ports.metricsURL)/readyz").body.contains(#""ready":true"#))
        let metrics = try await HTTP.get("\(ports.metricsURL)/metrics").body
        #expect(MetricsText.value(#"odds_supplier_confirmations_total{result="confirmed"}"#, in: metrics) == Double(confirmed))
        #expect(metrics.contains("odds_supplier_connections"))
    }

    // MARK: odds-feed/2 recovery

    static func metrics(_ ports: SupplierProcess.Ports) async throws -> String {
        try await HTTP.get("\(ports.metricsURL)/metrics").body
    }

    /// Reads one connection in a task, bounded: until `stop`, or until the server closes.
    static func read(_ client: RecordingClient, _ ports: SupplierProcess.Ports, start: FeedStart?, _ what: String,
                     stop: @escaping @Sendable (RecordingClient.Progress) -> Bool) async throws {
        let reader = Task { try await client.readUntilClosed(url: ports.feedURL, start: start, stop: stop) }
        try await TestInfrastructure.value(of: reader, what, timeout: .seconds(60))
    }

    /// Every market's state as of `seq`: its `initial` line, replaced by each later valid frame of
    /// the same (event_id, market), in the journal's market order (a snapshot's order).
    static func marketStates(asOf seq: Int, in lines: [JournalEntry]) throws -> [String] {
        func key(_ text: String) throws -> String {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
            return "\(object["event_id"] ?? "?")/\(object["market"] ?? "?")"
        }
        let initial = lines.filter { !$0.isStreamFrame }
        var order: [String] = []
        var state: [String: String] = [:]
        for line in initial {
            let market = try key(line.frame)
            order.append(market)
            state[market] = line.frame
        }
        #expect(Set(order).count == order.count, "one initial line per market")
        for line in lines where line.isStreamFrame && line.seq <= seq && line.kind == "valid" {
            state[try key(line.frame)] = line.frame
        }
        return order.map { state[$0]! }
    }

    @Test("resume after a position read: the frames after it are replayed, then live ones follow")
    func resumeReplaysTheFramesAfterAPosition() async throws {
        let ports = try SupplierProcess.ports()
        let journal = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: journal) }
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "2000", "SUPPLIER_JOURNAL": journal, "SUPPLIER_SEED": "11",
            "SUPPLIER_FAULT_MALFORMED": "0.05", "SUPPLIER_FAULT_INVALID": "0.05",
            "SUPPLIER_FAULT_DUPLICATE": "0.05", "SUPPLIER_FAULT_OUT_OF_ORDER": "0.05",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        let first = RecordingClient()
        try await Self.read(first, ports, start: .live, "a live client to read 300 odds frames") { $0.oddsCount >= 300 }
        let firstConnection = try #require(first.connections.first)
        expectWellFormed(firstConnection)
        let resumeAfter = firstConnection.odds[150].position
        // The client closed; the supplier has noticed once it counts no connection.
        let closed = try await TestInfrastructure.waitUntil {
            MetricsText.value("odds_supplier_connections", in: try await Self.metrics(ports)) == 0
        }
        #expect(closed, "the supplier still counts the first client's connection")

        let second = RecordingClient()
        try await Self.read(second, ports, start: .after(resumeAfter), "a resuming client to read its replay and 200 live frames") { progress in
            guard let hello = progress.hello, let last = progress.lastOdds else { return false }
            return last.seq >= hello.position.seq + 200
        }
        let metrics = try await Self.metrics(ports)
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(20)) == 0)
        let entries = try JournalEntry.streamFrames(journal)

        let connection = try #require(second.connections.first)
        expectWellFormed(connection)
        let hello = try #require(connection.hello)
        #expect(hello.recovery == .replay)
        #expect(hello.after == resumeAfter)
        #expect(hello.position.epoch == resumeAfter.epoch)
        #expect(hello.position.seq >= firstConnection.odds.last!.position.seq, "the stream is at least where the first client stopped")
        #expect(hello.replayLogFirstSeq == 1)
        // Exactly the journal's stream frames after the position, contiguous, then live ones.
        let odds = connection.odds
        #expect(odds.map(\.position.seq) == Array((resumeAfter.seq + 1)...(resumeAfter.seq + UInt64(odds.count))))
        let expected = entries.filter { $0.seq > Int(resumeAfter.seq) }.prefix(odds.count)
        expectSameFrames(odds.map(\.payload), expected.map(\.frame))
        #expect(entries.allSatisfy { $0.epoch == hello.position.epoch })
        // What the first client read of the same positions is what the second one got again.
        let overlap = firstConnection.odds.filter { $0.position > resumeAfter }
        expectSameFrames(Array(odds.prefix(overlap.count).map(\.payload)), overlap.map(\.payload))

        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="live"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="replay"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="snapshot"}"#, in: metrics) == 0)
        #expect(MetricsText.value("odds_supplier_frames_replayed_total", in: metrics) == Double(hello.position.seq - resumeAfter.seq))
        #expect(MetricsText.sum(prefix: "odds_supplier_snapshots_total", in: metrics) == 0)
    }

    @Test("a position older than the replay log gets a snapshot of every market's latest valid state, then live frames")
    func tooOldPositionGetsASnapshot() async throws {
        let ports = try SupplierProcess.ports()
        let journal = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: journal) }
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "2000", "SUPPLIER_JOURNAL": journal, "SUPPLIER_SEED": "12", "SUPPLIER_REPLAY_FRAMES": "50",
            "SUPPLIER_FAULT_MALFORMED": "0.05", "SUPPLIER_FAULT_INVALID": "0.05",
            "SUPPLIER_FAULT_DUPLICATE": "0.05", "SUPPLIER_FAULT_OUT_OF_ORDER": "0.05",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        let first = RecordingClient()
        try await Self.read(first, ports, start: .live, "a live client to read 400 odds frames") { $0.oddsCount >= 400 }
        let firstConnection = try #require(first.connections.first)
        expectWellFormed(firstConnection)
        let resumeAfter = firstConnection.odds[10].position  // seq 11; the log keeps only the last 50

        let second = RecordingClient()
        try await Self.read(second, ports, start: .after(resumeAfter), "a client asking for a too old position to read its snapshot and 100 live frames") {
            $0.snapshotComplete && $0.oddsCount >= 100
        }
        let metrics = try await Self.metrics(ports)
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(20)) == 0)
        let lines = try JournalEntry.read(journal)
        let entries = lines.filter(\.isStreamFrame)

        let connection = try #require(second.connections.first)
        let firstOddsSeq = expectWellFormed(connection)
        let hello = try #require(connection.hello)
        let snapshotSeq = hello.position.seq
        #expect(hello == FeedHello(position: FeedPosition(epoch: resumeAfter.epoch, seq: snapshotSeq), recovery: .snapshot, reason: .tooOld,
                                   after: resumeAfter, replayLogFirstSeq: snapshotSeq - 49))
        #expect(snapshotSeq >= 400)
        let markets = lines.count - entries.count
        #expect(markets > 0)
        guard case .snapshotStart(let position, let announced)? = connection.frames.dropFirst().first else {
            Issue.record("no snapshot_start after the hello: \(connection.raw.prefix(3))")
            return
        }
        #expect(position == hello.position)
        #expect(announced == markets, "one snapshot frame per market of the journal")
        let payloads = connection.frames.compactMap { frame -> String? in
            guard case .snapshot(_, _, _, let payload) = frame else { return nil }
            return String(decoding: payload, as: UTF8.self)
        }
        expectSameFrames(payloads, try Self.marketStates(asOf: Int(snapshotSeq), in: lines))
        for payload in payloads {
            if case .failure(let invalid) = OddsUpdateValidator.validate(Array(payload.utf8)) {
                Issue.record("a snapshot payload breaks the contract: \(invalid): \(payload)")
            }
        }
        #expect(connection.frames.dropFirst(2 + markets).first == .snapshotComplete(position: hello.position, markets: markets))
        // Then odds frames from S+1, exactly the journal's.
        #expect(firstOddsSeq == snapshotSeq + 1)
        let odds = connection.odds
        #expect(odds.first?.position.seq == snapshotSeq + 1)
        expectSameFrames(odds.map(\.payload), entries.filter { $0.seq > Int(snapshotSeq) }.prefix(odds.count).map(\.frame))

        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="too_old"}"#, in: metrics) == 1)
        #expect(MetricsText.sum(prefix: "odds_supplier_snapshots_total", in: metrics) == 1)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="snapshot"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="replay"}"#, in: metrics) == 0)
        #expect(MetricsText.value("odds_supplier_snapshot_frames_total", in: metrics) == Double(markets))
        #expect(MetricsText.value("odds_supplier_frames_replayed_total", in: metrics) == 0)
    }

    @Test("no parameter: a requested snapshot; another epoch or a position ahead: a snapshot saying why; bad parameters: 400")
    func snapshotsAndRefusals() async throws {
        let ports = try SupplierProcess.ports()
        let journal = Self.journalPath()
        defer { try? FileManager.default.removeItem(atPath: journal) }
        let supplier = try await SupplierProcess.start(ports, environment: [
            "SUPPLIER_RATE": "2000", "SUPPLIER_JOURNAL": journal, "SUPPLIER_SEED": "13",
        ])
        defer { supplier.stop(signal: SIGKILL) }
        // Refused before the upgrade with 400 and a JSON body saying why; nothing counts as a feed start.
        let host = "Host: 127.0.0.1:\(ports.http)\r\n"
        let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        func expectRefusalBody(_ answer: HTTP.Answer, _ what: String) throws {
            let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
            let error = object?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "bad_feed_request", "\(what): body \(answer.text.debugDescription)")
            #expect((error?["message"] as? String)?.isEmpty == false, "\(what): body \(answer.text.debugDescription)")
        }
        for query in ["after=garbage", "after=1:2&start=live", "start=replay", "after=0:5", "after=1:2&start=snapshot"] {
            // A WebSocket handshake, as a feed client sends it.
            let handshake = try await HTTP.exchange(port: ports.http, "GET /ws?\(query) HTTP/1.1\r\n\(host)\(upgrade)\r\n", timeout: .seconds(10))
            #expect(handshake.status == 400, "handshake ?\(query): \(handshake.head)")
            // hummingbird-websocket answers a refused upgrade itself, with an empty 400 (see the
            // report: SupplierServer's JSON body only reaches requests without Upgrade headers).
            withKnownIssue("the JSON body of a refused WebSocket upgrade is dropped by hummingbird-websocket") {
                let object = try? JSONSerialization.jsonObject(with: Data(handshake.body)) as? [String: Any]
                #expect((object?["error"] as? [String: Any])?["code"] as? String == "bad_feed_request",
                        "handshake ?\(query): body \(handshake.text.debugDescription)")
            }
            // The same request without the upgrade headers gets the body.
            let plain = try await HTTP.exchange(port: ports.http, "GET /ws?\(query) HTTP/1.1\r\n\(host)Connection: close\r\n\r\n", timeout: .seconds(10))
            #expect(plain.status == 400, "plain GET ?\(query): \(plain.head)")
            #expect(plain.header("content-type")?.hasPrefix("application/json") == true, "plain GET ?\(query): \(plain.head)")
            try expectRefusalBody(plain, "plain GET ?\(query)")
        }
        #expect(MetricsText.sum(prefix: "odds_supplier_feed_starts_total", in: try await Self.metrics(ports)) == 0)

        // No parameter at all, before any frame: the snapshot is every market's initial state.
        let plain = RecordingClient()
        try await Self.read(plain, ports, start: nil, "a client without parameters to read its snapshot and 50 live frames") {
            $0.snapshotComplete && $0.oddsCount >= 50
        }
        let plainConnection = try #require(plain.connections.first)
        expectWellFormed(plainConnection)
        let plainHello = try #require(plainConnection.hello)
        #expect(plainHello == FeedHello(position: FeedPosition(epoch: plainHello.position.epoch, seq: 0), recovery: .snapshot,
                                        reason: .requested, after: nil, replayLogFirstSeq: 0))
        let epoch = plainHello.position.epoch

        // Another epoch (an earlier supplier's, or one from the future) and a position ahead of
        // the stream: snapshots that say why.
        var asked: [(FeedPosition, SnapshotReason)] = [
            (FeedPosition(epoch: epoch - 1, seq: 5), .unknownEpoch),
            (FeedPosition(epoch: epoch + 1_000_000, seq: 1), .unknownEpoch),
            (FeedPosition(epoch: epoch, seq: 1_000_000_000), .ahead),
        ]
        asked.append((FeedPosition(epoch: 1, seq: 0), .unknownEpoch))
        var connections: [RecordingClient.Connection] = []
        for (position, reason) in asked {
            let client = RecordingClient()
            try await Self.read(client, ports, start: .after(position), "a client asking after \(position) to read its snapshot and 20 live frames") {
                $0.snapshotComplete && $0.oddsCount >= 20
            }
            let connection = try #require(client.connections.first)
            expectWellFormed(connection)
            let hello = try #require(connection.hello)
            #expect(hello.recovery == .snapshot && hello.reason == reason && hello.after == position, "after \(position): \(hello)")
            #expect(hello.position.epoch == epoch)
            connections.append(connection)
        }
        let metrics = try await Self.metrics(ports)
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(20)) == 0)
        let lines = try JournalEntry.read(journal)
        let markets = lines.filter { !$0.isStreamFrame }.count
        let initialStates = lines.filter { !$0.isStreamFrame }.map(\.frame)
        let snapshotPayloads = { (connection: RecordingClient.Connection) -> [String] in
            connection.frames.compactMap { frame -> String? in
                guard case .snapshot(_, _, _, let payload) = frame else { return nil }
                return String(decoding: payload, as: UTF8.self)
            }
        }
        expectSameFrames(snapshotPayloads(plainConnection), initialStates)
        for connection in connections {
            let seq = Int(connection.hello!.position.seq)
            expectSameFrames(snapshotPayloads(connection), try Self.marketStates(asOf: seq, in: lines))
        }
        let entries = lines.filter(\.isStreamFrame)
        for connection in [plainConnection] + connections {
            let odds = connection.odds
            expectSameFrames(odds.map(\.payload), entries.filter { $0.seq > Int(connection.hello!.position.seq) }.prefix(odds.count).map(\.frame))
        }

        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="requested"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="unknown_epoch"}"#, in: metrics) == 3)
        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="ahead"}"#, in: metrics) == 1)
        #expect(MetricsText.value(#"odds_supplier_snapshots_total{reason="too_old"}"#, in: metrics) == 0)
        #expect(MetricsText.value(#"odds_supplier_feed_starts_total{recovery="snapshot"}"#, in: metrics) == 5)
        #expect(MetricsText.sum(prefix: "odds_supplier_feed_starts_total", in: metrics) == 5)
        #expect(MetricsText.value("odds_supplier_snapshot_frames_total", in: metrics) == Double(5 * markets))
        #expect(MetricsText.value("odds_supplier_frames_replayed_total", in: metrics) == 0)
    }

    @Test("a bad setting fails at start with one line and exit code 78")
    func badConfiguration() async throws {
        let ports = try SupplierProcess.ports()
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent("supplier-simulator"),
            arguments: ["--rate", "0", "--http-port", "\(ports.http)"])
        let status = await process.waitForExit(timeout: .seconds(20))
        #expect(status != nil, "still running after 20 s: \(process.output.suffix(2000))")
        #expect(status == 78)
        let output = process.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(output == "supplier-simulator: invalid configuration: SUPPLIER_RATE must be between 1 and 50000, got 0")
    }
}
