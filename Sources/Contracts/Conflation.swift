/// The newest version per (event, market): the rule behind batch collapsing in the processor and
/// slow-consumer conflation in odds-service. Pure, so it is tested without I/O.
public struct LatestPerMarket: Sendable {
    private var positions: [MarketKey: Int] = [:]
    private(set) public var updates: [OddsUpdate] = []

    public init() {}

    public init(_ updates: some Sequence<OddsUpdate>) {
        for update in updates { offer(update) }
    }

    /// Keeps `update` if it is newer than what is held for its market. Returns false for a
    /// stale or duplicate version (dropped). A market keeps its first position, so output
    /// order follows first arrival, which keeps events' updates grouped as they came.
    @discardableResult
    public mutating func offer(_ update: OddsUpdate) -> Bool {
        let key = update.marketKey
        if let index = positions[key] {
            guard update.version > updates[index].version else { return false }
            updates[index] = update
            return true
        }
        positions[key] = updates.count
        updates.append(update)
        return true
    }

    public var count: Int { updates.count }
    public var isEmpty: Bool { updates.isEmpty }

    public mutating func removeAll() {
        positions.removeAll(keepingCapacity: true)
        updates.removeAll(keepingCapacity: true)
    }
}
