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
        let firstReader = Task { try await first.readUntilClosed(url: ports.feedURL) }
        let firstConnected = try await TestInfrastructure.waitUntil { !first.received.isEmpty }
        #expect(firstConnected)
        let secondReader = Task { try await second.readUntilClosed(url: ports.feedURL) }
        let flowing = try await TestInfrastructure.waitUntil { first.received.count > 2_000 && second.received.count > 0 }
        #expect(flowing)
        let metrics = try await HTTP.get("\(ports.metricsURL)/metrics").body
        #expect(MetricsText.value("odds_supplier_connections", in: metrics) == 2)
        #expect(MetricsText.value(#"odds_supplier_frames_sent_total{kind="valid"}"#, in: metrics) > 0)

        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(20)) == 0)
        try await TestInfrastructure.value(of: firstReader, "the first client's connection to end after SIGTERM", timeout: .seconds(30))
        try await TestInfrastructure.value(of: secondReader, "the second client's connection to end after SIGTERM", timeout: .seconds(30))
        let entries = try JournalEntry.read(journal)
        #expect(entries.count > 2_000)
        #expect(entries.map(\.seq) == Array(1...entries.count))
        #expect(Set(entries.map(\.kind)) == ["valid", "duplicate", "out_of_order", "malformed", "invalid"])
        // The first client saw the feed from its start; the second joined a little later.
        expectSameFrames(first.received, entries.map(\.frame))
        let secondStart = entries.count - second.received.count
        #expect(second.received.count > 0)
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
        let reader = Task { await client.readReconnecting(url: ports.feedURL) { stopped.value > 0 } }
        let reconnected = try await TestInfrastructure.waitUntil(timeout: .seconds(15)) { client.connectionCount >= 4 }
        #expect(reconnected)
        stopped.increment()
        // Longer than the simulator's own shutdown drain (10 s for clients to take what is
        // buffered): on a loaded machine a graceful stop can legitimately use all of it.
        #expect(await supplier.stopAsync(signal: SIGTERM, timeout: .seconds(25)) == 0)
        try await TestInfrastructure.value(of: reader, "the reconnecting client to stop after SIGTERM", timeout: .seconds(30))
        let entries = try JournalEntry.read(journal)
        #expect(!entries.isEmpty)
        expectSameFrames(client.received, entries.map(\.frame))
        #expect(supplier.output.contains("fault injection: closing every connection"))
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
        let fastConnected = try await TestInfrastructure.waitUntil { fast.received.count > 0 }
        #expect(fastConnected)
        // Completes the WebSocket upgrade, then never reads: its socket fills, then its buffer.
        let slow = try StalledWebSocketClient(port: ports.http)
        defer { slow.close() }
        let disconnected = try await TestInfrastructure.waitUntil(timeout: .seconds(30)) {
            let metrics = try await HTTP.get("\(ports.metricsURL)/metrics").body
            return MetricsText.value("odds_supplier_slow_client_disconnects_total", in: metrics) >= 1
        }
        #expect(disconnected, "\(supplier.output.suffix(2_000))")
        let before = fast.received.count
        let keptReceiving = try await TestInfrastructure.waitUntil(timeout: .seconds(20)) { fast.received.count > before + 100 }
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
