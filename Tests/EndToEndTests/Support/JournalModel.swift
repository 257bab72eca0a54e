import Contracts
import IntegrationSupport

/// What the supplier emitted, read from its journal and judged by the contract's validator (not
/// by the journal's own `kind`): the accepted updates, the rejected frames, and per market every
/// version with its content and the newest version — what every read model must end with.
struct JournalModel: Sendable {
    let entries: [JournalEntry]
    /// Frames `OddsUpdateValidator` accepts, in journal order: new versions and the duplicate and
    /// out-of-order re-sends of older ones.
    private(set) var accepted: [OddsUpdate] = []
    /// Frames it rejects, in journal order, with the validator's primary code.
    private(set) var rejected: [(entry: JournalEntry, code: String)] = []
    /// Per market, every version the supplier emitted and its content.
    private(set) var versions: [MarketKey: [Int64: OddsUpdate]] = [:]
    /// Per market, the newest version: the final state of every read model.
    private(set) var newest: [MarketKey: OddsUpdate] = [:]
    /// Where the journal contradicts itself or the validator (each one a supplier bug).
    private(set) var inconsistencies: [String] = []

    init(path: String) throws {
        entries = try JournalEntry.read(path)
        for (index, entry) in entries.enumerated() {
            if entry.seq != index + 1 { note("seq \(entry.seq) at line \(index + 1)") }
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
        // The simulator's kinds say how the version relates to what it emitted before.
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
        versions[key, default: [:]][update.version] = update
        if update.version > newestVersion { newest[key] = update }
    }

    private mutating func note(_ text: String) {
        if inconsistencies.count < 20 { inconsistencies.append(text) }
    }

    var newestVersions: [MarketKey: Int64] { newest.mapValues(\.version) }
    var eventIds: Set<String> { Set(newest.keys.map(\.eventId)) }
    func count(kind: String) -> Int { entries.filter { $0.kind == kind }.count }

    /// The content the supplier emitted for `version` of `key`, if it did.
    func update(_ key: MarketKey, version: Int64) -> OddsUpdate? { versions[key]?[version] }
}
