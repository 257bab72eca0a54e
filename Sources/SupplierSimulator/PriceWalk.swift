import Contracts
import Foundation

/// The price state of one market: "true" outcome probabilities that follow a random walk, and a
/// bookmaker margin (overround) applied on top. Prices are `1 / (probability × margin)` rounded to
/// two decimals, so the implied probabilities of a market add up to the margin (1.03–1.08 once
/// rounding is counted) and every price stays inside the contract's bounds.
struct PriceWalk: Sendable {
    /// The margin is kept inside this band; two-decimal rounding moves the implied sum by less
    /// than 0.006, so the published book stays within 1.03–1.08.
    static let marginBand: ClosedRange<Double> = 1.04...1.07
    /// Probability bounds keep prices within 1.01...~480 (the contract allows > 1.0 and <= 1000).
    static let probabilityBand: ClosedRange<Double> = 0.002...0.9
    /// Standard deviation of one step in log-probability space.
    static let volatility = 0.03

    let selections: [String]
    private(set) var probabilities: [Double]
    private(set) var margin: Double

    init(market: KnownMarket, generator: inout SeededGenerator) {
        selections = market.selections
        switch market {
        case .matchResult:
            let home = generator.uniform(0.25...0.55)
            let draw = generator.uniform(0.22...0.30)
            probabilities = [home, draw, 1 - home - draw]
        case .overUnder25, .bothTeamsToScore:
            let first = generator.uniform(0.40...0.60)
            probabilities = [first, 1 - first]
        }
        margin = generator.uniform(Self.marginBand)
        probabilities = Self.normalized(probabilities)
    }

    /// One move of the market: every probability drifts (log-normal step, renormalized), and the
    /// margin drifts a little. `intensity` scales the step (a reopened market jumps more).
    mutating func step(intensity: Double = 1, generator: inout SeededGenerator) {
        var weights = probabilities.map { log($0) + Self.volatility * intensity * generator.gaussian() }
        let largest = weights.max() ?? 0
        weights = weights.map { exp($0 - largest) }
        let total = weights.reduce(0, +)
        probabilities = Self.normalized(weights.map { $0 / total })
        margin = min(Self.marginBand.upperBound, max(Self.marginBand.lowerBound, margin + 0.001 * generator.gaussian()))
    }

    /// Selection → decimal price with two decimals.
    var prices: [String: Double] {
        var result: [String: Double] = [:]
        for (selection, probability) in zip(selections, probabilities) {
            result[selection] = Self.price(probability: probability, margin: margin)
        }
        return result
    }

    static func price(probability: Double, margin: Double) -> Double {
        let raw = 1 / (probability * margin)
        let rounded = (raw * 100).rounded() / 100
        return min(OddsUpdateValidator.maximumPrice, max(1.01, rounded))
    }

    /// Sum of implied probabilities (1 / price) of a book: the overround a bettor faces.
    static func impliedProbabilitySum(_ prices: [String: Double]) -> Double {
        prices.values.reduce(0) { $0 + 1 / $1 }
    }

    /// Clamps into `probabilityBand` and rescales to sum 1; repeated because clamping one
    /// outcome and rescaling can push another just outside the band.
    static func normalized(_ values: [Double]) -> [Double] {
        var result = values
        for _ in 0..<4 {
            result = result.map { min(probabilityBand.upperBound, max(probabilityBand.lowerBound, $0)) }
            let total = result.reduce(0, +)
            result = result.map { $0 / total }
            if result.allSatisfy({ probabilityBand.contains($0) }) { break }
        }
        return result
    }
}

/// One (event, market) as the supplier sees it: prices, status, the version counter, and the
/// recent frames kept for duplicate and out-of-order fault injection.
struct MarketState: Sendable {
    static let historyLimit = 8

    let event: CatalogueEvent
    let market: KnownMarket
    var walk: PriceWalk
    var status: MarketStatus = .open
    /// Updates left before a suspended market reopens.
    var suspendedUpdatesLeft = 0
    /// The last version emitted (or the starting point before the first update).
    var version: Int64
    /// Recent valid frames of this market, oldest first.
    var history: [String] = []

    init(event: CatalogueEvent, market: KnownMarket, firstVersion: Int64, generator: inout SeededGenerator) {
        self.event = event
        self.market = market
        self.walk = PriceWalk(market: market, generator: &generator)
        self.version = firstVersion - 1
    }

    /// Chance per update that an open market gets suspended (a goal, a red card, ...).
    static let suspensionChance = 0.01

    /// Moves the market one version forward: prices walk while open; occasionally the market
    /// is suspended for a few updates (prices frozen) and then reopens with a bigger jump.
    mutating func advance(generator: inout SeededGenerator) {
        version += 1
        switch status {
        case .open:
            if generator.chance(Self.suspensionChance) {
                status = .suspended
                suspendedUpdatesLeft = 2 + Int(generator.next() % 5)
            } else {
                walk.step(generator: &generator)
            }
        case .suspended:
            suspendedUpdatesLeft -= 1
            if suspendedUpdatesLeft <= 0 {
                status = .open
                walk.step(intensity: 4, generator: &generator)
            }
        }
    }

    func update(at time: Timestamp, prices: [String: Double]? = nil) -> OddsUpdate {
        OddsUpdate(eventId: event.eventId, homeTeam: event.homeTeam, awayTeam: event.awayTeam,
                   market: market.rawValue, odds: prices ?? walk.prices, status: status, updatedAt: time,
                   source: FrameEncoder.source, version: version)
    }

    mutating func remember(_ frame: String) {
        history.append(frame)
        if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
    }
}
