import Contracts
import Foundation
import Testing
@testable import SupplierSimulator

@Suite("Supplier prices and fault injection (pure logic)")
struct FeedGeneratorTests {
    static let start = Timestamp(millisecondsSinceEpoch: 1_790_000_000_000)

    static func generator(faults: FaultRates = FaultRates(), seed: UInt64 = 42, events: Int = 6) -> FeedGenerator {
        FeedGenerator(events: Catalogue.events(generatedCount: events), faults: faults, seed: seed,
                      firstVersion: start.millisecondsSinceEpoch * 1000)
    }

    @Test("catalogue: the four classic matches plus N generated events, three markets each")
    func catalogue() {
        let events = Catalogue.events(generatedCount: 40)
        #expect(events.count == 44)
        #expect(events.prefix(4).map(\.eventId) == ["MATCH_001", "MATCH_002", "MATCH_003", "MATCH_004"])
        #expect(events[0].homeTeam == "Flamengo" && events[0].awayTeam == "Palmeiras")
        #expect(events[3].homeTeam == "São Paulo" && events[3].awayTeam == "Vasco")
        #expect(Set(events.map(\.eventId)).count == 44)
        #expect(events.allSatisfy { $0.homeTeam != $0.awayTeam })
        #expect(Self.generator(events: 6).markets.count == 30)
    }

    @Test("valid frames pass the contract, keep the margin in 1.03–1.08, and versions only increase")
    func validFramesFollowTheContract() throws {
        var generator = Self.generator()
        var lastVersion: [MarketKey: Int64] = [:]
        var statuses: [MarketKey: [MarketStatus]] = [:]
        for step in 0..<30_000 {
            let time = Timestamp(millisecondsSinceEpoch: Self.start.millisecondsSinceEpoch + Int64(step))
            let frame = generator.nextFrame(at: time)
            #expect(frame.kind == .valid)
            let update = try OddsUpdateValidator.validate(frame.text).get()
            #expect(update.source == "supplier-simulator")
            #expect(update.updatedAt == time)
            let market = try #require(KnownMarket(rawValue: update.market))
            #expect(Set(update.odds.keys) == Set(market.selections))
            for price in update.odds.values { #expect(price > 1.0 && price <= 1000) }
            let implied = PriceWalk.impliedProbabilitySum(update.odds)
            #expect(implied >= 1.03 && implied <= 1.08, "implied probability sum \(implied) for \(frame.text)")
            if let previous = lastVersion[update.marketKey] { #expect(update.version > previous) }
            lastVersion[update.marketKey] = update.version
            statuses[update.marketKey, default: []].append(update.status)
        }
        #expect(lastVersion.count == 30)
        // Markets are occasionally suspended, and reopen afterwards.
        let reopened = statuses.values.filter { history in
            guard let firstSuspension = history.firstIndex(of: .suspended) else { return false }
            return history[firstSuspension...].contains(.open)
        }
        #expect(reopened.count >= 10)
    }

    @Test("prices move: a random walk, not a constant")
    func pricesWalk() throws {
        var generator = Self.generator(events: 0)
        var homePrices: Set<Double> = []
        for _ in 0..<2_000 {
            let update = try OddsUpdateValidator.validate(generator.nextFrame(at: Self.start).text).get()
            if update.eventId == "MATCH_001", update.market == "1x2" { homePrices.insert(update.odds["home"]!) }
        }
        #expect(homePrices.count > 20)
    }

    @Test("the same seed gives the same feed")
    func deterministic() {
        let faults = FaultRates(malformed: 0.1, invalid: 0.1, duplicate: 0.1, outOfOrder: 0.1)
        var first = Self.generator(faults: faults, seed: 7)
        var second = Self.generator(faults: faults, seed: 7)
        var other = Self.generator(faults: faults, seed: 8)
        let a = first.nextFrames(count: 500, at: Self.start)
        let b = second.nextFrames(count: 500, at: Self.start)
        let c = other.nextFrames(count: 500, at: Self.start)
        #expect(a == b)
        #expect(a != c)
    }

    @Test("frames taken back with undo() leave the feed as if they were never made")
    func undoTakesFramesBack() {
        let faults = FaultRates(malformed: 0.1, invalid: 0.1, duplicate: 0.1, outOfOrder: 0.1)
        var generator = Self.generator(faults: faults, seed: 11)
        _ = generator.nextFrames(count: 50, at: Self.start)
        var untouched = generator
        generator.markUndoPoint()
        let discarded = generator.nextFrames(count: 40, at: Self.start)
        generator.undo()
        let again = generator.nextFrames(count: 200, at: Self.start)
        #expect(again == untouched.nextFrames(count: 200, at: Self.start))
        #expect(Array(again.prefix(40)) == discarded, "the same draws come again")
        #expect(generator.book(at: Self.start) == untouched.book(at: Self.start), "every market's state is restored")
        generator.undo()  // no mark: nothing to take back
        #expect(generator.book(at: Self.start) == untouched.book(at: Self.start))
    }

    @Test("each fault kind is what its journal line says, with the reason the validator gives")
    func faultKinds() throws {
        let faults = FaultRates(malformed: 0.1, invalid: 0.1, duplicate: 0.1, outOfOrder: 0.1)
        var generator = Self.generator(faults: faults)
        var sentValid: [MarketKey: [(text: String, version: Int64)]] = [:]
        var counts: [FrameKind: Int] = [:]
        let total = 20_000
        for _ in 0..<total {
            let frame = generator.nextFrame(at: Self.start)
            counts[frame.kind, default: 0] += 1
            let result = OddsUpdateValidator.validate(frame.text)
            switch frame.kind {
            case .valid:
                let update = try result.get()
                #expect(frame.expectedReason == nil)
                sentValid[update.marketKey, default: []].append((frame.text, update.version))
            case .duplicate:
                let update = try result.get()
                // The exact text of that market's latest frame.
                #expect(sentValid[update.marketKey]?.last?.text == frame.text)
            case .outOfOrder:
                let update = try result.get()
                let history = try #require(sentValid[update.marketKey])
                #expect(history.contains { $0.text == frame.text })
                #expect(update.version < history.last!.version)
            case .malformed, .invalid:
                guard case .failure(let invalid) = result else {
                    Issue.record("\(frame.kind) frame passed validation: \(frame.text)")
                    continue
                }
                let expected = try #require(frame.expectedReason)
                #expect(invalid.primaryCode == expected, "\(frame.text): \(invalid)")
                if frame.kind == .malformed { #expect(expected == .malformedJSON) }
                if frame.kind == .invalid { #expect([.priceOutOfRange, .pricePrecision].contains(expected)) }
            case .initial:
                Issue.record("the generator emitted a journal-only kind: \(frame.text)")
            }
        }
        // Rates are honoured (duplicates and out-of-order need history, so they may fall a bit short).
        for kind in [FrameKind.malformed, .invalid] {
            let share = Double(counts[kind] ?? 0) / Double(total)
            #expect(abs(share - 0.1) < 0.015, "\(kind): \(share)")
        }
        for kind in [FrameKind.duplicate, .outOfOrder] {
            let share = Double(counts[kind] ?? 0) / Double(total)
            #expect(share > 0.08 && share < 0.115, "\(kind): \(share)")
        }
    }

    @Test("fault decisions follow cumulative thresholds")
    func faultInjectorThresholds() {
        let injector = FaultInjector(rates: FaultRates(malformed: 0.1, invalid: 0.2, duplicate: 0.3, outOfOrder: 0.1))
        #expect(injector.decide(0.05) == .malformed)
        #expect(injector.decide(0.15) == .invalid)
        #expect(injector.decide(0.45) == .duplicate)
        #expect(injector.decide(0.65) == .outOfOrder)
        #expect(injector.decide(0.75) == .valid)
        #expect(FaultInjector(rates: FaultRates()).decide(0) == .valid)
    }

    @Test("frame text reads back as the same update; journal lines are JSON with the exact frame")
    func encoding() throws {
        let update = OddsUpdate(eventId: "MATCH_004", homeTeam: "São \"Paulo\"\\", awayTeam: "Vasco\n", market: "1x2",
                                odds: ["home": 2.15, "draw": 3.3, "away": 1000.0], status: .suspended,
                                updatedAt: Self.start, source: "supplier-simulator", version: 42)
        let text = update.jsonString()
        #expect(try OddsUpdateValidator.validate(text).get() == update)
        #expect(text.hasPrefix(#"{"away_team":"Vasco\n","event_id":"MATCH_004""#))
        #expect(text.contains(#""odds":{"away":1000,"draw":3.3,"home":2.15}"#))
        #expect(Array(text.utf8) == Array(try ContractCoding.encoder.encode(update)), "the contract encoder's bytes")

        let line = FrameEncoder.journalLine(epoch: 3, seq: 9, frame: EmittedFrame(kind: .invalid, text: text, expectedReason: .priceOutOfRange))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["seq"] as? Int == 9)
        #expect(object["kind"] as? String == "invalid")
        #expect(object["reason"] as? String == "price_out_of_range")
        #expect(object["frame"] as? String == text)
        let plain = FrameEncoder.journalLine(epoch: 3, seq: 1, frame: EmittedFrame(kind: .outOfOrder, text: "x", expectedReason: nil))
        #expect(plain == #"{"epoch":3,"seq":1,"kind":"out_of_order","frame":"x"}"#)
    }
}
