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
