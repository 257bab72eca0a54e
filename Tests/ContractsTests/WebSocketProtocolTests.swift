import Foundation
import Testing
@testable import Contracts

@Suite struct WebSocketProtocolTests {
    func parse(_ text: String) -> Result<ClientMessage, ClientMessageError> { ClientMessage.parse(Array(text.utf8)) }

    @Test func parsesClientMessages() throws {
        #expect(try parse(#"{"type":"ping"}"#).get() == .ping)
        #expect(try parse(#"{"type":"subscribe","eventId":"MATCH_001"}"#).get()
            == .subscribe(eventIds: ["MATCH_001"], versions: [:]))
        #expect(try parse(#"{"type":"subscribe","eventIds":["A","B","A"],"versions":{"1x2":41}}"#).get()
            == .subscribe(eventIds: ["A", "B"], versions: ["1x2": 41]))
        #expect(try parse(#"{"type":"unsubscribe","eventId":"A"}"#).get() == .unsubscribe(eventIds: ["A"]))
    }

    @Test(arguments: [
        ("not json", "bad_frame"), ("[]", "bad_frame"), (#"{"type":1}"#, "bad_frame"),
        (#"{"type":"subscribe"}"#, "bad_frame"), (#"{"type":"subscribe","eventId":5}"#, "bad_frame"),
        (#"{"type":"subscribe","eventId":"bad id"}"#, "invalid_event_id"),
        (#"{"type":"subscribe","eventId":"A","versions":{"1x2":"x"}}"#, "bad_frame"),
        (#"{"type":"dance"}"#, "unknown_type"),
    ])
    func rejectsBadFrames(text: String, code: String) {
        guard case .failure(let error) = parse(text) else { Issue.record("accepted \(text)"); return }
        #expect(error.code == code)
    }

    @Test func tooManyEventIdsInOneFrame() {
        let ids = (0...ClientMessage.maxEventIdsPerFrame).map { "\"E\($0)\"" }.joined(separator: ",")
        guard case .failure(let error) = parse(#"{"type":"subscribe","eventIds":[\#(ids)]}"#) else {
            Issue.record("accepted"); return
        }
        #expect(error.code == "too_many_events")
    }

    @Test func serverMessagesEncodeAsDocumented() throws {
        let update = try OddsUpdateValidator.validate(frame(validFields())).get()
        #expect(ServerMessage.pong.jsonString() == #"{"type":"pong"}"#)
        #expect(ServerMessage.heartbeat.jsonString() == #"{"type":"heartbeat"}"#)
        #expect(ServerMessage.error(code: "bad_frame", message: "x").jsonString()
            == #"{"code":"bad_frame","message":"x","type":"error"}"#)
        let odds = ServerMessage.odds(eventId: "MATCH_001", payload: update).jsonString()
        #expect(odds.hasPrefix(#"{"eventId":"MATCH_001","payload":{"away_team":"Palmeiras""#))
        #expect(try JSONDecoder().decode(ServerMessage.self, from: Data(odds.utf8)) == .odds(eventId: "MATCH_001", payload: update))
        let snapshot = ServerMessage.snapshot(eventId: "MATCH_001", markets: [update]).jsonString()
        #expect(try JSONDecoder().decode(ServerMessage.self, from: Data(snapshot.utf8)) == .snapshot(eventId: "MATCH_001", markets: [update]))
    }

    @Test func statusFramesEncodeAsDocumented() throws {
        let since = try #require(Timestamp(rfc3339: "2026-11-22T12:01:02.345Z"))
        let suspended = ServerMessage.status(eventId: "MATCH_001", status: .suspended(since: since))
        #expect(suspended.jsonString()
            == #"{"effectiveStatus":"suspended","eventId":"MATCH_001","reason":"feed_down","since":"2026-11-22T12:01:02.345Z","type":"status"}"#)
        // Open again: reason is an explicit null (the frame always has its five members).
        let open = ServerMessage.status(eventId: "MATCH_001", status: .open(since: since))
        #expect(open.jsonString()
            == #"{"effectiveStatus":"open","eventId":"MATCH_001","reason":null,"since":"2026-11-22T12:01:02.345Z","type":"status"}"#)
        for message in [suspended, open] {
            #expect(try JSONDecoder().decode(ServerMessage.self, from: Data(message.jsonString().utf8)) == message)
        }
    }

    @Test func aSnapshotCarriesTheSuspensionOnlyWhenThereIsOne() throws {
        let update = try OddsUpdateValidator.validate(frame(validFields())).get()
        let since = try #require(Timestamp(rfc3339: "2026-11-22T12:01:02.345Z"))
        let during = ServerMessage.snapshot(eventId: "MATCH_001", markets: [update], status: .suspended(since: since))
        #expect(during.jsonString().hasSuffix(
            #""status":{"effectiveStatus":"suspended","reason":"feed_down","since":"2026-11-22T12:01:02.345Z"},"type":"snapshot"}"#))
        #expect(try JSONDecoder().decode(ServerMessage.self, from: Data(during.jsonString().utf8)) == during)
        let plain = ServerMessage.snapshot(eventId: "MATCH_001", markets: [update]).jsonString()
        #expect(!plain.contains(#""status":{"#))
        guard case .snapshot(_, _, let status) = try JSONDecoder().decode(ServerMessage.self, from: Data(plain.utf8)) else {
            Issue.record("not a snapshot")
            return
        }
        #expect(status == nil)
    }

    @Test func theDocumentedExamplesDecode() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("contracts/examples/ws/valid")
        let suspended = try Data(contentsOf: folder.appendingPathComponent("server_status_suspended.json"))
        guard case .status(let eventId, let status) = try JSONDecoder().decode(ServerMessage.self, from: suspended) else {
            Issue.record("server_status_suspended.json is not a status frame")
            return
        }
        #expect(eventId == "BRA_2026_R34_FLA_PAL")
        #expect(status == .suspended(since: Timestamp(rfc3339: "2026-11-22T12:01:02.345Z")!))
        let open = try Data(contentsOf: folder.appendingPathComponent("server_status_open_again.json"))
        #expect(try JSONDecoder().decode(ServerMessage.self, from: open)
            == .status(eventId: "BRA_2026_R34_FLA_PAL", status: .open(since: Timestamp(rfc3339: "2026-11-22T12:03:10.001Z")!)))
        let snapshot = try Data(contentsOf: folder.appendingPathComponent("server_snapshot_during_feed_outage.json"))
        guard case .snapshot(_, let markets, let carried) = try JSONDecoder().decode(ServerMessage.self, from: snapshot) else {
            Issue.record("not a snapshot")
            return
        }
        #expect(markets.count == 1)
        #expect(carried?.isSuspended == true && carried?.reason == .feedDown)
    }

    @Test func restTypesUseCamelCase() throws {
        let update = try OddsUpdateValidator.validate(frame(validFields())).get()
        let response = EventOddsResponse(eventId: "MATCH_001", homeTeam: "Flamengo", awayTeam: "Palmeiras", markets: [MarketOdds(update)])
        let text = String(decoding: try ContractCoding.encoder.encode(response), as: UTF8.self)
        #expect(text.contains(#""homeTeam":"Flamengo""#))
        #expect(text.contains(#""updatedAt":"2026-11-22T10:15:30.123Z""#))
        let error = String(decoding: try ContractCoding.encoder.encode(APIErrorResponse(code: "not_found", message: "no event")), as: UTF8.self)
        #expect(error == #"{"error":{"code":"not_found","message":"no event"}}"#)
        let broadcast = String(decoding: try ContractCoding.encoder.encode(BroadcastMessage(payload: update)), as: UTF8.self)
        #expect(broadcast.hasPrefix(#"{"eventId":"MATCH_001","payload":{"#))
    }
}
