import Contracts
import Foundation
import Testing

@Suite("JSONTextWriter: hand-written JSON text (pure logic)")
struct JSONTextWriterTests {
    @Test("quoted escapes quote, backslash and control characters, and leaves the rest as it is")
    func escapes() {
        var writer = JSONTextWriter()
        writer.quoted("a\"b\\c\nd\re\tf\u{01}g\u{1F}h/é€😀")
        #expect(writer.text == #""a\"b\\c\nd\re\tf\u0001g\u001fh/é€😀""#)
        var controls = JSONTextWriter()
        controls.quoted("\u{08}\u{0C}")
        #expect(controls.text == #""\b\f""#, "backspace and form feed as the contract encoder writes them")
    }

    @Test("every string reads back as itself, through Foundation's JSON parser and ours")
    func roundTrips() throws {
        var samples = ["", "plain", #"{"away_team":"Palmeiras","odds":{"home":2.15}}"#, "ends with a backslash \\", "\"\"\"", "😀 at the start"]
        samples.append(String((0..<0x80).map { Character(Unicode.Scalar(UInt8($0))) }))
        for sample in samples {
            var writer = JSONTextWriter()
            writer.raw(#"{"value":"#)
            writer.quoted(sample)
            writer.raw("}")
            let text = writer.text
            let foundation = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
            #expect(foundation?["value"] == sample, "Foundation read \(text) differently")
            #expect(try JSONParser.parse(Array(text.utf8)) == .object(["value": .string(sample)]), "our parser read \(text) differently")
        }
    }

    @Test("integers and raw text are written as given")
    func integersAndRaw() {
        var writer = JSONTextWriter()
        writer.raw("[")
        writer.integer(UInt64.max)
        writer.raw(",")
        writer.integer(-42)
        writer.raw("]")
        #expect(writer.text == "[18446744073709551615,-42]")
        #expect(writer.bytes == Array("[18446744073709551615,-42]".utf8))
    }

    @Test("numbers are written as the contract encoder writes a Double")
    func numbers() throws {
        for value in [2.15, 1000.0, 2.0, 1.001, 999.999, 1.1, 100.5, 3.3000000000000003, 0.1 + 0.2, 1e-7, 123_456_789.0] {
            var writer = JSONTextWriter()
            writer.number(value)
            #expect(writer.bytes == Array(try ContractCoding.encoder.encode(value)), "\(value)")
        }
    }

    /// Updates whose strings need every kind of escape, and prices of every shape the contract
    /// allows (whole, up to three decimals, the bounds, and Double noise).
    static let updates: [OddsUpdate] = [
        OddsUpdate(eventId: "MATCH_001", homeTeam: "Flamengo", awayTeam: "Palmeiras", market: "1x2",
                   odds: ["home": 2.15, "draw": 3.3, "away": 3.6], updatedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_123),
                   source: "supplier-simulator", version: 42),
        OddsUpdate(eventId: "E.1:x-y", homeTeam: "São \"Paulo\"\\", awayTeam: "Vasco\n\t\r\u{08}\u{0C}\u{01}/⚽😀", market: "ou_2_5",
                   odds: ["over": 1000.0, "under": 1.001], status: .suspended, updatedAt: Timestamp(millisecondsSinceEpoch: 0),
                   source: "bench:123", version: Int64.max),
        OddsUpdate(eventId: "e", homeTeam: "", awayTeam: "", market: "custom_market_9",
                   odds: ["a10": 2.0, "a9": 999.999, "b_c": 0.1 + 0.2 + 1, "yes": 1.5], updatedAt: Timestamp(millisecondsSinceEpoch: 86_399_999),
                   source: "", version: 1),
    ]

    @Test("an OddsUpdate and its broadcast message are the contract encoder's bytes")
    func oddsUpdateIsTheEncodersBytes() throws {
        for update in Self.updates {
            let json = update.canonicalJSON()
            #expect(json == Array(try ContractCoding.encoder.encode(update)), "\(update)")
            #expect(update.jsonData() == (try ContractCoding.encoder.encode(update)))
            #expect(try ContractCoding.decoder.decode(OddsUpdate.self, from: Data(json)) == update)
            let broadcast = BroadcastMessage.canonicalJSON(eventId: update.eventId, payloadJSON: json)
            #expect(broadcast == Array(try ContractCoding.encoder.encode(BroadcastMessage(payload: update))), "\(update)")
            var odds = JSONTextWriter()
            OddsUpdate.writeOdds(update.odds, to: &odds)
            #expect(odds.bytes == Array(try ContractCoding.encoder.encode(update.odds)))
        }
    }
}
