import Foundation
import Testing
@testable import Contracts

/// A valid frame as a mutable dictionary, so each test breaks exactly one rule.
func validFields() -> [String: Any] {
    [
        "event_id": "MATCH_001", "home_team": "Flamengo", "away_team": "Palmeiras", "market": "1x2",
        "odds": ["home": 2.15, "draw": 3.30, "away": 3.60], "status": "open",
        "updated_at": "2026-11-22T10:15:30.123Z", "source": "supplier-simulator", "version": 42,
    ]
}

func frame(_ fields: [String: Any]) -> [UInt8] {
    Array(try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]))
}

func codes(_ text: String) -> Set<ValidationCode> {
    switch OddsUpdateValidator.validate(text) {
    case .success: []
    case .failure(let invalid): invalid.codes
    }
}

func codes(_ fields: [String: Any]) -> Set<ValidationCode> {
    switch OddsUpdateValidator.validate(frame(fields)) {
    case .success: []
    case .failure(let invalid): invalid.codes
    }
}

func oddsFrame(_ prices: String, market: String = "1x2") -> String {
    """
    {"event_id":"MATCH_001","home_team":"Flamengo","away_team":"Palmeiras","market":"\(market)",
     "odds":\(prices),"updated_at":"2026-11-22T10:15:30.123Z","source":"sim","version":1}
    """
}

@Suite("OddsUpdate v1 validation")
struct OddsUpdateValidatorTests {
    @Test func validFrameDecodesEveryField() throws {
        let update = try OddsUpdateValidator.validate(frame(validFields())).get()
        #expect(update.eventId == "MATCH_001")
        #expect(update.homeTeam == "Flamengo")
        #expect(update.awayTeam == "Palmeiras")
        #expect(update.market == "1x2")
        #expect(update.odds == ["home": 2.15, "draw": 3.30, "away": 3.60])
        #expect(update.status == .open)
        #expect(update.updatedAt.rfc3339 == "2026-11-22T10:15:30.123Z")
        #expect(update.source == "supplier-simulator")
        #expect(update.version == 42)
    }

    @Test func statusIsOptionalAndDefaultsToOpen() throws {
        var fields = validFields()
        fields["status"] = nil
        #expect(try OddsUpdateValidator.validate(frame(fields)).get().status == .open)
        fields["status"] = "suspended"
        #expect(try OddsUpdateValidator.validate(frame(fields)).get().status == .suspended)
    }

    @Test("boundary prices", arguments: [
        ("1.0", ValidationCode?.some(.priceOutOfRange)),
        ("1", .some(.priceOutOfRange)),
        ("1.001", nil),
        ("1000", nil),
        ("1000.000", nil),
        ("1000.001", .some(.priceOutOfRange)),
        ("0", .some(.priceOutOfRange)),
        ("-2.5", .some(.priceOutOfRange)),
        ("1e400", .some(.priceOutOfRange)),
        ("2.1234", .some(.pricePrecision)),
        ("2.1230", nil),
        ("2.15e0", nil),
        ("2.1235e-1", .some(.priceOutOfRange)),
        ("215.3e-2", nil),
        ("2153.4e-3", .some(.pricePrecision)),
    ])
    func boundaryPrices(price: String, expected: ValidationCode?) {
        let found = codes(oddsFrame(#"{"home":\#(price),"draw":3.3,"away":3.6}"#))
        if let expected {
            #expect(found == [expected], "price \(price)")
        } else {
            #expect(found.isEmpty, "price \(price)")
        }
    }

    @Test func nonFinitePriceBuiltInCodeIsRejected() {
        for price in [Double.nan, .infinity, -.infinity, 1.0, 1000.001, 2.1234] {
            let update = OddsUpdate(eventId: "E1", homeTeam: "A", awayTeam: "B", market: "btts",
                                    odds: ["yes": price, "no": 1.9], updatedAt: .now(), source: "test", version: 1)
            let found = Set(OddsUpdateValidator.issues(in: update).map(\.code))
            #expect(!found.isEmpty && found.isSubset(of: [.priceOutOfRange, .pricePrecision]), "price \(price)")
        }
        let good = OddsUpdate(eventId: "E1", homeTeam: "A", awayTeam: "B", market: "btts",
                              odds: ["yes": 1.001, "no": 1000], updatedAt: .now(), source: "test", version: 1)
        #expect(OddsUpdateValidator.issues(in: good).isEmpty)
    }

    @Test func oversizeFrameIsRejectedBeforeParsing() {
        var fields = validFields()
        fields["home_team"] = String(repeating: "x", count: 17_000)
        let result = OddsUpdateValidator.validate(frame(fields))
        #expect(throws: InvalidFrame.self) { try result.get() }
        if case .failure(let invalid) = result { #expect(invalid.codes == [.oversize]) }

        // Exactly at the limit is allowed by size (then judged by the other rules).
        let padded = Array(oddsFrame(#"{"home":2.1,"draw":3.3,"away":3.6}"#).utf8)
        var exact = padded
        exact.append(contentsOf: Array(repeating: UInt8(ascii: " "), count: OddsUpdateValidator.maxFrameBytes - padded.count))
        #expect(exact.count == OddsUpdateValidator.maxFrameBytes)
        #expect((try? OddsUpdateValidator.validate(exact).get()) != nil)
        exact.append(UInt8(ascii: " "))
        #expect(codes(String(decoding: exact, as: UTF8.self)) == [.oversize])
    }

    @Test func malformedJSONAndNonObjects() {
        #expect(codes(#"{"event_id": "MATCH_001""#) == [.malformedJSON])
        #expect(codes("") == [.malformedJSON])
        #expect(codes("{} trailing") == [.malformedJSON])
        #expect(codes(String(repeating: "[", count: 1000)) == [.malformedJSON])
        #expect(codes("[1,2]") == [.notAnObject])
        #expect(codes("\"text\"") == [.notAnObject])
        #expect(codes("null") == [.notAnObject])
        #expect(OddsUpdateValidator.validate([0xFF, 0xFE]).isFailure)
    }

    @Test(arguments: OddsUpdateValidator.requiredFields)
    func everyRequiredFieldIsRequired(field: String) throws {
        var fields = validFields()
        fields[field] = nil
        let result = OddsUpdateValidator.validate(frame(fields))
        guard case .failure(let invalid) = result else { Issue.record("accepted without \(field)"); return }
        #expect(invalid.codes == [.missingField])
        #expect(invalid.issues.first?.field == field)
    }

    @Test func unknownFieldsAreRejected() {
        var fields = validFields()
        fields["vesion"] = 3
        #expect(codes(fields) == [.unknownField])
    }

    @Test func wrongTypesAreRejected() {
        let cases: [(String, Any)] = [
            ("event_id", 1), ("home_team", true), ("away_team", ["x"]), ("market", 12),
            ("odds", [2.1, 3.3]), ("status", NSNull()), ("updated_at", 1_700_000_000),
            ("source", NSNull()), ("version", "42"),
        ]
        for (field, value) in cases {
            var fields = validFields()
            fields[field] = value
            #expect(codes(fields) == [.wrongType], "\(field) = \(value)")
        }
        #expect(codes(oddsFrame(#"{"home":"2.1","draw":3.3,"away":3.6}"#)) == [.wrongType])
        #expect(codes(oddsFrame(#"{"home":true,"draw":3.3,"away":3.6}"#)) == [.wrongType])
    }

    @Test func eventIdRules() {
        for good in ["M", "MATCH_001", "br.serie-a:2026_07", String(repeating: "a", count: 64)] {
            var fields = validFields(); fields["event_id"] = good
            #expect(codes(fields).isEmpty, "\(good)")
        }
        for bad in ["", "MATCH 001", "MATCH/1", "jogo-ç", String(repeating: "a", count: 65)] {
            var fields = validFields(); fields["event_id"] = bad
            #expect(codes(fields) == [.invalidEventId], "\(bad)")
        }
    }

    @Test func marketRules() {
        for bad in ["", "1X2", "ou-2.5", String(repeating: "m", count: 33)] {
            #expect(codes(oddsFrame(#"{"a":2.0}"#, market: bad)) == [.invalidMarket], "\(bad)")
        }
        #expect(codes(oddsFrame(#"{"a":2.0}"#, market: String(repeating: "m", count: 32))).isEmpty)
    }

    @Test func teamAndSourceRules() {
        for (field, value, code) in [
            ("home_team", "", ValidationCode.invalidTeam), ("away_team", "   ", .invalidTeam),
            ("home_team", String(repeating: "t", count: 101), .invalidTeam),
            ("source", "", .invalidSource), ("source", String(repeating: "s", count: 65), .invalidSource),
        ] {
            var fields = validFields(); fields[field] = value
            #expect(codes(fields) == [code], "\(field)")
        }
        var accented = validFields(); accented["home_team"] = "Grêmio"; accented["away_team"] = "São Paulo"
        #expect(codes(accented).isEmpty)
    }

    @Test func knownMarketsNeedExactlyTheirSelections() {
        #expect(codes(oddsFrame(#"{"home":2.1,"away":3.6}"#)) == [.missingSelection])
        #expect(codes(oddsFrame(#"{"home":2.1,"draw":3.3,"away":3.6,"other":5}"#)) == [.unknownSelection])
        #expect(codes(oddsFrame(#"{"over":1.9,"under":1.95}"#, market: "ou_2_5")).isEmpty)
        #expect(codes(oddsFrame(#"{"over":1.9}"#, market: "ou_2_5")) == [.missingSelection])
        #expect(codes(oddsFrame(#"{"yes":1.8,"no":2.05}"#, market: "btts")).isEmpty)
        #expect(codes(oddsFrame(#"{"yes":1.8,"draw":2.05}"#, market: "btts")) == [.missingSelection, .unknownSelection])
    }

    @Test func unknownMarketsAreAcceptedWhenTheShapeIsValid() throws {
        let update = try OddsUpdateValidator.validate(
            oddsFrame(#"{"1_0":7.5,"0_0":9.0,"2_1":11.0}"#, market: "correct_score")).get()
        #expect(update.market == "correct_score")
        #expect(update.odds.count == 3)
        #expect(codes(oddsFrame("{}", market: "correct_score")) == [.emptyOdds])
        #expect(codes(oddsFrame(#"{"Home":2.0}"#, market: "correct_score")) == [.invalidSelection])
        let many = (0..<33).map { "\"s\($0)\":2.0" }.joined(separator: ",")
        #expect(codes(oddsFrame("{\(many)}", market: "correct_score")) == [.invalidSelection])
    }

    @Test func statusRules() {
        var fields = validFields(); fields["status"] = "closed"
        #expect(codes(fields) == [.invalidStatus])
    }

    @Test("version rules", arguments: ["0", "-3", "1.5", "9007199254740992", "1e400"])
    func invalidVersions(version: String) {
        let text = #"{"event_id":"E","home_team":"A","away_team":"B","market":"m","odds":{"x":2},"#
            + #""updated_at":"2026-11-22T10:15:30.123Z","source":"s","version":\#(version)}"#
        #expect(codes(text) == [.invalidVersion], "version \(version)")
    }

    @Test func largestVersionIsAccepted() throws {
        var fields = validFields(); fields["version"] = 9_007_199_254_740_991
        #expect(try OddsUpdateValidator.validate(frame(fields)).get().version == 9_007_199_254_740_991)
        fields["version"] = 1
        #expect(try OddsUpdateValidator.validate(frame(fields)).get().version == 1)
    }

    @Test("updated_at rules", arguments: [
        "2026-11-22T10:15:30Z", "2026-11-22T10:15:30.123+01:00", "2026-13-22T10:15:30.123Z",
        "2026-02-29T10:15:30.123Z", "2026-11-22 10:15:30.123Z", "2026-11-22T24:00:00.000Z",
        "2026-11-22T10:15:30.1234Z", "yesterday",
    ])
    func invalidTimestamps(text: String) {
        var fields = validFields(); fields["updated_at"] = text
        #expect(codes(fields) == [.invalidUpdatedAt], "\(text)")
    }

    @Test func everyReasonIsReported() {
        let text = #"{"event_id":"","home_team":"","market":"1X2","odds":{"home":0.5},"#
            + #""status":"closed","updated_at":"now","source":"s","version":0,"extra":1}"#
        guard case .failure(let invalid) = OddsUpdateValidator.validate(text) else {
            Issue.record("accepted"); return
        }
        #expect(invalid.codes == [.missingField, .unknownField, .invalidEventId, .invalidTeam, .invalidMarket,
                                  .priceOutOfRange, .invalidStatus, .invalidVersion, .invalidUpdatedAt])
        #expect(invalid.description.contains("away_team"))
        #expect(invalid.primaryCode == .missingField)
    }

    @Test func encodingRoundTripsThroughTheValidator() throws {
        let original = try OddsUpdateValidator.validate(frame(validFields())).get()
        let again = try OddsUpdateValidator.validate(Array(original.jsonData())).get()
        #expect(again == original)
        let decoded = try ContractCoding.decoder.decode(OddsUpdate.self, from: original.jsonData())
        #expect(decoded == original)
        #expect(original.jsonString().contains(#""event_id":"MATCH_001""#))
        #expect(original.jsonString().contains(#""updated_at":"2026-11-22T10:15:30.123Z""#))
    }

    @Test func supersedesComparesVersionsOfTheSameMarket() throws {
        let base = try OddsUpdateValidator.validate(frame(validFields())).get()
        var newer = base; newer.version += 1
        var otherMarket = newer; otherMarket.market = "btts"
        #expect(newer.supersedes(base))
        #expect(!base.supersedes(newer))
        #expect(!base.supersedes(base))
        #expect(!otherMarket.supersedes(base))
    }
}

extension Result {
    var isFailure: Bool { if case .failure = self { true } else { false } }
}
