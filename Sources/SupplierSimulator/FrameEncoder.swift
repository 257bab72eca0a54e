import Contracts

/// Writes OddsUpdate frames and journal lines as JSON text by hand: the feed runs at up to
/// 50,000 frames/s and JSONEncoder would cost most of a core at that rate. Keys come out in
/// sorted order, like `OddsUpdate.jsonData()`.
enum FrameEncoder {
    static let source = "supplier-simulator"

    static func encode(_ update: OddsUpdate) -> String {
        var writer = JSONTextWriter(capacity: 256)
        writer.raw(#"{"away_team":"#)
        writer.quoted(update.awayTeam)
        writer.raw(#","event_id":"#)
        writer.quoted(update.eventId)
        writer.raw(#","home_team":"#)
        writer.quoted(update.homeTeam)
        writer.raw(#","market":"#)
        writer.quoted(update.market)
        writer.raw(#","odds":{"#)
        var first = true
        for selection in update.odds.keys.sorted() {
            if !first { writer.raw(",") }
            first = false
            writer.quoted(selection)
            writer.raw(":")
            writer.raw(formatPrice(update.odds[selection]!))
        }
        writer.raw(#"},"source":"#)
        writer.quoted(update.source)
        writer.raw(#","status":""#)
        writer.raw(update.status.rawValue)
        writer.raw(#"","updated_at":""#)
        writer.raw(update.updatedAt.rfc3339)
        writer.raw(#"","version":"#)
        writer.integer(update.version)
        writer.raw("}")
        return writer.text
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
        var writer = JSONTextWriter(capacity: text.utf8.count + text.utf8.count / 4 + 100)
        writer.raw(#"{"epoch":"#)
        writer.integer(epoch)
        writer.raw(#","seq":"#)
        writer.integer(seq)
        writer.raw(#","kind":""#)
        writer.raw(kind)
        writer.raw("\"")
        if let reason {
            writer.raw(#","reason":""#)
            writer.raw(reason.rawValue)
            writer.raw("\"")
        }
        writer.raw(#","frame":"#)
        writer.quoted(text)
        writer.raw("}")
        return writer.text
    }
}
