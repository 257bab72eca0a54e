import Testing
@testable import Contracts

@Suite struct JSONParserTests {
    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func parsesEveryType() throws {
        let value = try parse(#" {"a":[1,-2.5,true,false,null,"x\n\u00e9\ud83d\ude00"],"b":{}} "#)
        guard case .object(let object) = value, case .array(let items)? = object["a"] else {
            Issue.record("not an object"); return
        }
        #expect(items.count == 6)
        #expect(items[2] == .bool(true))
        #expect(items[4] == .null)
        #expect(items[5] == .string("x\né😀"))
        #expect(object["b"] == .object([:]))
    }

    @Test(arguments: [
        ("2.15", 2), ("2.150", 2), ("1000", 0), ("1e3", 0), ("1.5e-3", 4), ("15e-1", 1), ("0.0", 0), ("-0.001", 3),
    ])
    func decimalPlaces(text: String, places: Int) throws {
        guard case .number(let number) = try parse(text) else { Issue.record("not a number"); return }
        #expect(number.decimalPlaces == places, "\(text)")
    }

    @Test func integerValues() throws {
        guard case .number(let big) = try parse("9007199254740993") else { return }
        #expect(big.integerValue == 9_007_199_254_740_993)
        guard case .number(let fraction) = try parse("1.5") else { return }
        #expect(fraction.integerValue == nil)
        guard case .number(let whole) = try parse("42.0") else { return }
        #expect(whole.integerValue == 42)
    }

    @Test(arguments: ["", "01", "1.", ".5", "+1", "[1,]", "{\"a\" 1}", "\"\\x\"", "\"\u{01}\"", "tru", "\"\\ud800\"", "{\"a\":1,}"])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParseError.self) { try parse(text) }
    }

    @Test func nestingIsBounded() {
        #expect(throws: JSONParseError.self) { try parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)) }
        #expect(throws: Never.self) { try parse(String(repeating: "[", count: 20) + String(repeating: "]", count: 20)) }
    }
}
