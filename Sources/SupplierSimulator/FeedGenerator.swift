import Contracts

/// What a journal line says a frame is.
enum FrameKind: String, CaseIterable, Sendable {
    /// A new version of a market.
    case valid
    /// The exact text of the market's latest frame, sent again.
    case duplicate
    /// The exact text of an older frame of the market (an older version re-sent).
    case outOfOrder = "out_of_order"
    /// Not JSON at all (a truncated frame).
    case malformed
    /// JSON that breaks the contract (a bad price).
    case invalid
    /// Journal only: a market's state before the stream's first frame (what a snapshot sends for
    /// a market that has not moved yet). Never a stream frame.
    case initial
}

/// One frame handed to the connected clients.
struct EmittedFrame: Sendable, Hashable {
    let kind: FrameKind
    let text: String
    /// The validation code ingest should reject it with (malformed and invalid frames only).
    let expectedReason: ValidationCode?
    /// Index of the market in `FeedGenerator.markets` the frame is about.
    var market: Int?
}

/// Probabilities of each fault per frame; the rest of the frames are valid.
struct FaultRates: Sendable, Equatable {
    var malformed = 0.0
    var invalid = 0.0
    var duplicate = 0.0
    var outOfOrder = 0.0

    var total: Double { malformed + invalid + duplicate + outOfOrder }
}

/// Decides which kind of frame comes next: a plain draw against cumulative fault rates.
struct FaultInjector: Sendable {
    let rates: FaultRates

    func decide(_ draw: Double) -> FrameKind {
        var threshold = rates.malformed
        if draw < threshold { return .malformed }
        threshold += rates.invalid
        if draw < threshold { return .invalid }
        threshold += rates.duplicate
        if draw < threshold { return .duplicate }
        threshold += rates.outOfOrder
        if draw < threshold { return .outOfOrder }
        return .valid
    }
}

/// The whole simulated feed: every market's state, and the fault decisions. Deterministic for a
/// given seed, first version and sequence of timestamps; no I/O.
struct FeedGenerator: Sendable {
    private(set) var markets: [MarketState]
    private var generator: SeededGenerator
    let faults: FaultInjector
    /// What `undo()` restores: the random state at the mark, and each market changed since, as
    /// it was. Keeping only those (instead of a copy of the whole generator) spares a
    /// copy-on-write of every market's state on every tick.
    private var undoPoint: (generator: SeededGenerator, markets: [Int: MarketState])?

    /// - Parameter firstVersion: version of every market's first update. The simulator derives it
    ///   from the wall clock (milliseconds × 1000), so a restarted supplier continues above the
    ///   versions it sent before (as long as one market gets fewer than 1,000 updates per ms).
    init(events: [CatalogueEvent], faults: FaultRates, seed: UInt64, firstVersion: Int64) {
        var generator = SeededGenerator(seed: seed)
        var markets: [MarketState] = []
        for event in events {
            for market in Catalogue.markets {
                markets.append(MarketState(event: event, market: market, firstVersion: firstVersion, generator: &generator))
            }
        }
        self.markets = markets
        self.generator = generator
        self.faults = FaultInjector(rates: faults)
    }

    /// Every market's current state as OddsUpdate text, in market order: the snapshot of a feed
    /// that has not emitted anything yet (each at the version before its first update).
    func book(at time: Timestamp) -> [String] {
        markets.map { $0.update(at: time).jsonString() }
    }

    /// Frames made from now on can be taken back with `undo()`.
    mutating func markUndoPoint() {
        undoPoint = (generator, [:])
    }

    /// Back to the state at the last `markUndoPoint()`, as if the frames since were never made.
    mutating func undo() {
        guard let point = undoPoint else { return }
        generator = point.generator
        for (index, market) in point.markets { markets[index] = market }
        undoPoint = nil
    }

    mutating func nextFrames(count: Int, at time: Timestamp) -> [EmittedFrame] {
        var frames: [EmittedFrame] = []
        frames.reserveCapacity(count)
        for _ in 0..<count { frames.append(nextFrame(at: time)) }
        return frames
    }

    mutating func nextFrame(at time: Timestamp) -> EmittedFrame {
        let kind = faults.decide(generator.unit())
        let index = Int(generator.next() % UInt64(markets.count))
        switch kind {
        case .duplicate:
            if let latest = markets[index].history.last {
                return EmittedFrame(kind: .duplicate, text: latest, expectedReason: nil, market: index)
            }
        case .outOfOrder:
            let history = markets[index].history
            if history.count >= 2 {
                let older = Int(generator.next() % UInt64(history.count - 1))
                return EmittedFrame(kind: .outOfOrder, text: history[older], expectedReason: nil, market: index)
            }
        case .malformed:
            return malformedFrame(market: index, at: time)
        case .invalid:
            return invalidFrame(market: index, at: time)
        case .valid, .initial:
            break
        }
        return validFrame(market: index, at: time)
    }

    private mutating func validFrame(market index: Int, at time: Timestamp) -> EmittedFrame {
        if undoPoint != nil, undoPoint?.markets[index] == nil { undoPoint?.markets[index] = markets[index] }
        markets[index].advance(generator: &generator)
        let text = markets[index].update(at: time).jsonString()
        markets[index].remember(text)
        return EmittedFrame(kind: .valid, text: text, expectedReason: nil, market: index)
    }

    /// A truncated frame: every proper prefix of a JSON object is malformed JSON.
    private mutating func malformedFrame(market index: Int, at time: Timestamp) -> EmittedFrame {
        let whole = markets[index].update(at: time).jsonString()
        // Cut on a character boundary so the text frame stays valid UTF-8.
        let length = 1 + Int(generator.next() % UInt64(whole.count - 1))
        return EmittedFrame(kind: .malformed, text: String(whole.prefix(length)), expectedReason: .malformedJSON, market: index)
    }

    /// The market's current state with one price the contract forbids.
    private mutating func invalidFrame(market index: Int, at time: Timestamp) -> EmittedFrame {
        var prices = markets[index].walk.prices
        let selections = markets[index].walk.selections
        let selection = selections[Int(generator.next() % UInt64(selections.count))]
        let reason: ValidationCode
        switch generator.next() % 4 {
        case 0:
            prices[selection] = 0.95
            reason = .priceOutOfRange
        case 1:
            prices[selection] = 1.0
            reason = .priceOutOfRange
        case 2:
            prices[selection] = 1500.0
            reason = .priceOutOfRange
        default:
            // Four decimals: the contract allows at most three.
            let hundredths = ((prices[selection] ?? 2) * 100).rounded()
            prices[selection] = (hundredths * 100 + 1) / 10_000
            reason = .pricePrecision
        }
        let text = markets[index].update(at: time, prices: prices).jsonString()
        return EmittedFrame(kind: .invalid, text: text, expectedReason: reason, market: index)
    }
}
