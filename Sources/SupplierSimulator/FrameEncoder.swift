import Contracts

/// Writes OddsUpdate frames and journal lines as JSON text by hand: the feed runs at up to
/// 50,000 frames/s and JSONEncoder would cost most of a core at that rate. Keys come out in
/// sorted order, like `OddsUpdate.jsonData()`.
enum FrameEncoder {
    static let source = "supplier-simulator"

    static func encode(_ update: OddsUpdate) -> String {
        var text = ""
        text.reserveCapacity(256)
        text += #"{"away_team":"#
        appendQuoted(update.awayTeam, to: &text)
        text += #","event_id":"#
        appendQuoted(update.eventId, to: &text)
        text += #","home_team":"#
        appendQuoted(update.homeTeam, to: &text)
        text += #","market":"#
        appendQuoted(update.market, to: &text)
        text += #","odds":{"#
        var first = true
        for selection in update.odds.keys.sorted() {
            if !first { text += "," }
            first = false
            appendQuoted(selection, to: &text)
            text += ":"
            text += formatPrice(update.odds[selection]!)
        }
        text += #"},"source":"#
        appendQuoted(update.source, to: &text)
        text += #","status":""#
        text += update.status.rawValue
        text += #"","updated_at":""#
        text += update.updatedAt.rfc3339
        text += #"","version":"#
        text += String(update.version)
        text += "}"
        return text
    }

    /// Shortest text that reads back as the same Double (`2.15`, `1000.0`, `2.1234`).
    static func formatPrice(_ price: Double) -> String {
        "\(price)"
    }

    /// One journal line (without the newline):
    /// `{"epoch":E,"seq":N,"kind":"...","reason":"...","frame":"..."}`; `frame` is the OddsUpdate
    /// text (the stream frame's payload). Kind `initial` (seq 0) records a market's state before
    /// the stream's first frame.
    static func journalLine(epoch: UInt64, seq: UInt64, frame: EmittedFrame) -> String {
        journalLine(epoch: epoch, seq: seq, kind: frame.kind.rawValue, reason: frame.expectedReason, text: frame.text)
    }

    static func journalLine(epoch: UInt64, seq: UInt64, kind: String, reason: ValidationCode?, text: String) -> String {
        var line = #"{"epoch":"#
        line.reserveCapacity(text.utf8.count + 100)
        line += String(epoch)
        line += #","seq":"#
        line += String(seq)
        line += #","kind":""#
        line += kind
        line += "\""
        if let reason {
            line += #","reason":""#
            line += reason.rawValue
            line += "\""
        }
        line += #","frame":"#
        appendQuoted(text, to: &line)
        line += "}"
        return line
    }

    /// Appends `value` as a JSON string literal.
    static func appendQuoted(_ value: String, to text: inout String) {
        FeedFrameEncoder.appendQuoted(value, to: &text)
    }
}
