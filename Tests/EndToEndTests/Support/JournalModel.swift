import Contracts
import IntegrationSupport

/// What the supplier emitted, read from its journal and judged by the contract's validator (not
/// by the journal's own `kind`): every market's starting state (the `initial` lines, seq 0: what
/// a snapshot sends for a market that has not moved yet), the accepted stream frames, the
/// rejected ones, and per market every version with its content and the newest version — what
/// every read model must end with.
struct JournalModel: Sendable {
    /// The supplier's epoch (every line of one journal has the same).
    let epoch: UInt64
    /// The `initial` lines: one per market, seq 0, not stream frames.
    let initial: [JournalEntry]
    /// The stream frames, in order (seq 1, 2, ...).
    let entries: [JournalEntry]
    /// Starting states, per the validator (every one must be a valid OddsUpdate).
    private(set) var initialUpdates: [OddsUpdate] = []
    /// Stream frames `OddsUpdateValidator` accepts, in journal order: new versions and the
    /// duplicate and out-of-order re-sends of older ones.
    private(set) var accepted: [OddsUpdate] = []
    /// The journal entries of `accepted`, in the same order.
    private(set) var acceptedEntries: [JournalEntry] = []
    /// Stream frames it rejects, in journal order, with the validator's primary code.
    private(set) var rejected: [(entry: JournalEntry, code: String)] = []
    /// Per market, every version the supplier emitted (starting state included) and its content.
    private(set) var versions: [MarketKey: [Int64: OddsUpdate]] = [:]
    /// Per market, the newest version among the starting state and the valid frames: the final
    /// state of every read model.
    private(set) var newest: [MarketKey: OddsUpdate] = [:]
    /// Where the journal contradicts itself or the validator (each one a supplier bug).
    private(set) var inconsistencies: [String] = []
    /// Versions another run of the supplier emitted (an earlier epoch): known content for the
    /// checks of history and WebSocket updates, never part of `newest`.
    private var earlier: [MarketKey: [Int64: OddsUpdate]] = [:]

    init(path: String) throws {
        try self.init(lines: JournalEntry.read(path))
    }

    init(lines: [JournalEntry]) {
        initial = lines.filter { !$0.isStreamFrame }
        entries = lines.filter(\.isStreamFrame)
        epoch = lines.first?.epoch ?? 0
        if !lines.prefix(initial.count).allSatisfy({ !$0.isStreamFrame }) {
            note("initial lines after stream frames: the journal must start with them")
        }
        for entry in lines where entry.epoch != epoch {
            note("seq \(entry.seq): epoch \(entry.epoch), the journal's first line has \(epoch)")
        }
        for entry in initial {
            if entry.seq != 0 { note("initial line with seq \(entry.seq)") }
            switch OddsUpdateValidator.validate(entry.frame) {
            case .success(let update):
                if newest[update.marketKey] != nil { note("two initial lines for \(update.marketKey)") }
                initialUpdates.append(update)
                versions[update.marketKey, default: [:]][update.version] = update
                newest[update.marketKey] = update
            case .failure(let invalid):
                note("initial line rejected by the validator: \(invalid.primaryCode.rawValue)")
            }
        }
        for (index, entry) in entries.enumerated() {
            if entry.seq != index + 1 { note("seq \(entry.seq) at stream frame \(index + 1)") }
            switch OddsUpdateValidator.validate(entry.frame) {
            case .success(let update):
                if !["valid", "duplicate", "out_of_order"].contains(entry.kind) {
                    note("seq \(entry.seq): journaled as \(entry.kind) but the validator accepts it")
                }
                accept(update, entry: entry)
            case .failure(let invalid):
                let code = invalid.primaryCode.rawValue
                if !["malformed", "invalid"].contains(entry.kind) || entry.reason != code {
                    note("seq \(entry.seq): journaled as \(entry.kind)/\(entry.reason ?? "-") but the validator says \(code)")
                }
                rejected.append((entry, code))
            }
        }
    }

    private mutating func accept(_ update: OddsUpdate, entry: JournalEntry) {
        let key = update.marketKey
        let newestVersion = newest[key]?.version ?? 0
        if newest[key] == nil { note("seq \(entry.seq): \(key) has no initial line") }
        // The simulator's kinds say how the version relates to what it emitted before (a
        // duplicate re-sends the latest frame the stream carried; the starting state is not one).
        switch entry.kind {
        case "valid" where update.version <= newestVersion,
             "duplicate" where update.version != newestVersion,
             "out_of_order" where update.version >= newestVersion:
            note("seq \(entry.seq): \(entry.kind) frame with version \(update.version) after \(newestVersion) for \(key)")
        default:
            break
        }
        if let known = versions[key]?[update.version], known != update {
            note("seq \(entry.seq): version \(update.version) of \(key) re-sent with other content")
        }
        accepted.append(update)
        acceptedEntries.append(entry)
        versions[key, default: [:]][update.version] = update
        if update.version > newestVersion { newest[key] = update }
    }

    private mutating func note(_ text: String) {
        if inconsistencies.count < 20 { inconsistencies.append(text) }
    }

    var newestVersions: [MarketKey: Int64] { newest.mapValues(\.version) }
    var eventIds: Set<String> { Set(newest.keys.map(\.eventId)) }
    /// Stream frames of `kind` (`initial` lines are not counted).
    func count(kind: String) -> Int { entries.filter { $0.kind == kind }.count }

    /// The content the supplier emitted for `version` of `key`, if it did (in this run, or in
    /// an earlier one added with `including(earlier:)`).
    func update(_ key: MarketKey, version: Int64) -> OddsUpdate? { versions[key]?[version] ?? earlier[key]?[version] }

    /// This journal, knowing also the versions an earlier run of the supplier emitted (`updates`:
    /// its journal's, and what only Kafka recorded of it) — for a supplier that was restarted.
    func including(earlier updates: [OddsUpdate]) -> JournalModel {
        var model = self
        for update in updates {
            if let known = model.earlier[update.marketKey]?[update.version], known != update {
                model.note("earlier run: version \(update.version) of \(update.marketKey) with two contents")
            }
            if let own = model.versions[update.marketKey]?[update.version], own != update {
                model.note("version \(update.version) of \(update.marketKey) emitted by two runs with other content")
            }
            model.earlier[update.marketKey, default: [:]][update.version] = update
        }
        return model
    }

    /// Every update this journal says the supplier emitted: starting states and accepted frames.
    var allUpdates: [OddsUpdate] { initialUpdates + accepted }
}
