import Contracts
import Foundation
import Testing

@Suite("BroadcastMessage.parse: the processor's messages read without JSONDecoder (pure logic)")
struct BroadcastMessageTests {
    static let updates: [OddsUpdate] = [
        OddsUpdate(eventId: "MATCH_001", homeTeam: "Flamengo", awayTeam: "Palmeiras", market: "1x2",
                   odds: ["home": 2.15, "draw": 3.3, "away": 3.6], updatedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_123),
                   source: "supplier-simulator", version: 42),
        OddsUpdate(eventId: "EVT-é", homeTeam: "São \"Paulo\"", awayTeam: "Grêmio\\B", market: "correct_score",
                   odds: ["1_0": 7.5, "0_0": 9, "2_1": 11.25], status: .suspended, updatedAt: Timestamp(millisecondsSinceEpoch: 0),
                   source: "bench:123456", version: Int64.max),
    ]

    @Test("every message our encoder writes reads back as JSONDecoder reads it", arguments: updates)
    func agreesWithJSONDecoder(update: OddsUpdate) throws {
        let bytes = Array(try ContractCoding.encoder.encode(BroadcastMessage(payload: update)))
        let decoded = try ContractCoding.decoder.decode(BroadcastMessage.self, from: Data(bytes))
        #expect(try BroadcastMessage.parse(bytes) == decoded)
        #expect(decoded.payload == update)
    }

    @Test("status may be absent (open), as Decodable allows")
    func statusAbsent() throws {
        let text = #"{"eventId":"E1","payload":{"away_team":"B","event_id":"E1","home_team":"A","market":"1x2","odds":{"home":2},"source":"s","updated_at":"2026-11-22T10:15:30.123Z","version":7}}"#
        let parsed = try BroadcastMessage.parse(Array(text.utf8))
        #expect(parsed.payload.status == .open && parsed.payload.odds == ["home": 2] && parsed.payload.version == 7)
        #expect(parsed == (try ContractCoding.decoder.decode(BroadcastMessage.self, from: Data(text.utf8))))
    }

    @Test("what Decodable refuses is refused, with the field named", arguments: [
        (#"not json"#, "not JSON"),
        (#"[1]"#, "not a JSON object"),
        (#"{"payload":{}}"#, "eventId"),
        (#"{"eventId":"E1"}"#, "payload: missing"),
        (#"{"eventId":"E1","payload":{"away_team":"B","event_id":"E1","home_team":"A","market":"1x2","odds":{"home":"2"},"source":"s","updated_at":"2026-11-22T10:15:30.123Z","version":7}}"#, "odds.home"),
        (#"{"eventId":"E1","payload":{"away_team":"B","event_id":"E1","home_team":"A","market":"1x2","odds":{"home":2},"source":"s","updated_at":"yesterday","version":7}}"#, "updated_at"),
        (#"{"eventId":"E1","payload":{"away_team":"B","event_id":"E1","home_team":"A","market":"1x2","odds":{"home":2},"source":"s","updated_at":"2026-11-22T10:15:30.123Z","version":7.5}}"#, "version"),
        (#"{"eventId":"E1","payload":{"away_team":"B","event_id":"E1","home_team":"A","market":"1x2","odds":{"home":2},"status":"closed","source":"s","updated_at":"2026-11-22T10:15:30.123Z","version":7}}"#, "status"),
        (#"{"eventId":"E1","payload":{"away_team":"B","event_id":"E1","market":"1x2","odds":{"home":2},"source":"s","updated_at":"2026-11-22T10:15:30.123Z","version":7}}"#, "home_team"),
    ])
    func refusals(text: String, named: String) {
        #expect(throws: BroadcastMessage.Undecodable.self) { try BroadcastMessage.parse(Array(text.utf8)) }
        do {
            _ = try BroadcastMessage.parse(Array(text.utf8))
        } catch {
            #expect(error.description.contains(named), "\(error) does not name \(named)")
        }
        #expect((try? ContractCoding.decoder.decode(BroadcastMessage.self, from: Data(text.utf8))) == nil, "JSONDecoder accepts \(text)")
    }
}
