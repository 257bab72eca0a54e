import Foundation
import Testing
@testable import Contracts

@Suite("JSON member spans (pure)")
struct JSONSpanTests {
    func span(_ text: String, _ key: String = "payload") -> String? {
        let bytes = Array(text.utf8)
        return JSONSpan.valueRange(ofTopLevelKey: key, in: bytes).map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    @Test func findsTheTopLevelMemberWhateverItHolds() {
        #expect(span(#"{"eventId":"A","payload":{"x":1}}"#) == #"{"x":1}"#)
        #expect(span(#"{"payload":[1,{"payload":2},"}"],"eventId":"A"}"#) == #"[1,{"payload":2},"}"]"#)
        #expect(span(#" { "eventId" : "A" , "payload" : "a \"quoted\" } text" } "#) == #""a \"quoted\" } text""#)
        #expect(span(#"{"a":{"payload":1},"payload":-1.5e3}"#) == "-1.5e3")
        #expect(span(#"{"payload":null}"#) == "null")
        #expect(span(#"{"payload":{}}"#) == "{}")
        #expect(span(#"{"eventId":"A"}"#, "eventId") == #""A""#)
    }

    @Test func refusesWhatItCannotVouchFor() {
        for text in [#"{"eventId":"A"}"#, #"["payload",1]"#, #"{"payload":1,"payload":2}"#, #"{"payload":{"x":1}"#,
                     #"{"payload":1} trailing"#, #"{"pay\u006coad":1}"#, "{}", "", #"{"payload"}"#, #"{"payload":}"#] {
            #expect(span(text) == nil, "\(text)")
        }
    }

    @Test func agreesWithAFullParseOnRealMessages() throws {
        let update = OddsUpdate(eventId: "MATCH_1", homeTeam: "Grêmio \"B\"", awayTeam: "São Paulo / Sub-20", market: "1x2",
                                odds: ["home": 2.15, "draw": 3.3, "away": 3.6], updatedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_123),
                                source: "supplier-simulator", version: 42)
        let message = Array(try ContractCoding.encoder.encode(BroadcastMessage(payload: update)))
        let range = try #require(JSONSpan.valueRange(ofTopLevelKey: "payload", in: message))
        #expect(Array(message[range]) == Array(update.jsonData()))
        #expect(try ContractCoding.decoder.decode(OddsUpdate.self, from: Data(message[range])) == update)
    }

    @Test func stringsAreEscapedAsTheContractEncoderDoes() throws {
        for text in ["MATCH_1", "a\"b\\c", "line\nbreak\ttab\r\u{08}\u{0C}", "\u{01}\u{1F}", "slash/ok", "ünï©ødé ⚽"] {
            var output: [UInt8] = []
            JSONSpan.appendString(text, to: &output)
            #expect(output == Array(try ContractCoding.encoder.encode(text)), "\(text.debugDescription)")
        }
    }
}
