import Contracts
import Foundation

/// What the watcher shows: the newest version of every market of the followed events, with the
/// direction each price last moved, and the platform status of each event (a feed that is down
/// suspends all its markets: "SUSPENDED (feed down since 12:01:02)"). Pure state (no I/O), so
/// the version guard and the rendering are unit-testable.
struct WatchBoard: Sendable {
    enum Move: Sendable, Equatable { case up, down, same }

    struct Row: Sendable {
        var update: OddsUpdate
        /// Selection → direction of its last change, and when that change arrived.
        var moves: [String: Move] = [:]
        var changedAt: Date
    }

    private(set) var rows: [MarketKey: Row] = [:]
    /// event → its platform status, from `status` frames and snapshots (absent: open).
    private(set) var platform: [String: EventStatus] = [:]
    private(set) var framesReceived = 0
    private(set) var staleIgnored = 0
    /// updated_at → receipt of the newest delta, in milliseconds (same-machine clocks).
    private(set) var lastLatencyMs: Int64?
    var status = "connecting"

    /// Markets already seen, as `versions` for a resuming subscribe.
    func versions(of eventId: String) -> [String: Int64] {
        var versions: [String: Int64] = [:]
        for (key, row) in rows where key.eventId == eventId { versions[key.market] = row.update.version }
        return versions
    }

    /// Applies a snapshot or delta; returns false when it is not newer than what is shown.
    @discardableResult
    mutating func apply(_ update: OddsUpdate, receivedAt: Date, isDelta: Bool) -> Bool {
        framesReceived += 1
        let key = update.marketKey
        if let current = rows[key], current.update.version >= update.version {
            staleIgnored += 1
            return false
        }
        var row = Row(update: update, changedAt: receivedAt)
        if let previous = rows[key]?.update {
            for (selection, price) in update.odds {
                guard let old = previous.odds[selection] else { continue }
                row.moves[selection] = price > old ? .up : price < old ? .down : .same
            }
        }
        rows[key] = row
        if isDelta {
            lastLatencyMs = Int64((receivedAt.timeIntervalSince1970 * 1000).rounded(.down)) - update.updatedAt.millisecondsSinceEpoch
        }
        return true
    }

    mutating func apply(_ message: ServerMessage, receivedAt: Date) {
        switch message {
        case .snapshot(let eventId, let markets, let status):
            // A snapshot carries the platform status only while the event's feed is down.
            platform[eventId] = status
            for update in markets { apply(update, receivedAt: receivedAt, isDelta: false) }
        case .odds(_, let update):
            apply(update, receivedAt: receivedAt, isDelta: true)
        case .status(let eventId, let status):
            framesReceived += 1
            platform[eventId] = status.isSuspended ? status : nil
        case .pong, .heartbeat, .error:
            break
        }
    }

    /// The table as text; ANSI colours (green up, red down, for `highlight` after a change)
    /// only when `colour` is set.
    func render(now: Date, colour: Bool, highlight: TimeInterval = 1.5, title: String) -> String {
        func paint(_ text: String, _ code: String) -> String { colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
        }
        var lines: [String] = []
        let latency = lastLatencyMs.map { "\($0) ms" } ?? "-"
        lines.append(paint(title, "1"))
        lines.append("status: \(status)   frames: \(framesReceived)   stale ignored: \(staleIgnored)   last delta latency: \(latency)")
        lines.append("")
        lines.append(paint(pad("EVENT", 14) + pad("MATCH", 34) + pad("MARKET", 8) + pad("PRICES", 40) + pad("VERSION", 18) + "AGE",
                           "4"))
        let sorted = rows.values.sorted {
            ($0.update.eventId, $0.update.market) < ($1.update.eventId, $1.update.market)
        }
        for row in sorted {
            let update = row.update
            let fresh = now.timeIntervalSince(row.changedAt) < highlight
            var prices = ""
            var visible = 0
            for selection in update.odds.keys.sorted(by: Self.selectionOrder) {
                let text = "\(selection) \(String(format: "%.2f", update.odds[selection] ?? 0))"
                let arrow: String
                switch row.moves[selection] {
                case .up?: arrow = "▲"
                case .down?: arrow = "▼"
                default: arrow = " "
                }
                let cell = "\(text)\(arrow) "
                visible += cell.count
                switch (fresh, row.moves[selection]) {
                case (true, .up?): prices += paint(cell, "32")
                case (true, .down?): prices += paint(cell, "31")
                default: prices += cell
                }
            }
            if visible < 40 { prices += String(repeating: " ", count: 40 - visible) }
            let age = max(0, now.timeIntervalSince(update.updatedAt.date))
            let status: String
            if let text = Self.statusText(update, platform: platform[update.eventId]) {
                status = " " + paint(text, "33")
            } else {
                status = ""
            }
            lines.append(pad(update.eventId, 14) + pad("\(update.homeTeam) v \(update.awayTeam)", 34) + pad(update.market, 8)
                         + prices + pad("\(update.version)", 18) + String(format: "%.1fs", age) + status)
        }
        if sorted.isEmpty { lines.append("(waiting for odds)") }
        return lines.joined(separator: "\n")
    }

    /// What the STATUS column says about a market: nil while it can be bet on;
    /// "SUSPENDED (feed down since 12:01:02)" (UTC) while its event's feed is down; "SUSPENDED"
    /// when the supplier suspended it.
    static func statusText(_ update: OddsUpdate, platform: EventStatus?) -> String? {
        if let platform, platform.isSuspended {
            let why = platform.reason == .feedDown ? "feed down" : (platform.reason?.rawValue ?? "platform")
            return "SUSPENDED (\(why) since \(clock(platform.since)))"
        }
        return update.status == .suspended ? "SUSPENDED" : nil
    }

    /// `HH:MM:SS` of a timestamp, UTC.
    static func clock(_ time: Timestamp) -> String {
        String(time.rfc3339.dropFirst(11).prefix(8))
    }

    /// Selections in the order a bettor reads them.
    static func selectionOrder(_ lhs: String, _ rhs: String) -> Bool {
        let order = ["home": 0, "draw": 1, "away": 2, "over": 3, "under": 4, "yes": 5, "no": 6]
        return (order[lhs] ?? 99, lhs) < (order[rhs] ?? 99, rhs)
    }
}
