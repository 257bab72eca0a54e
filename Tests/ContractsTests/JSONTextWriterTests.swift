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
}
