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

    /// One journal line (without the newline): `{"seq":N,"kind":"...","reason":"...","frame":"..."}`.
    static func journalLine(seq: UInt64, frame: EmittedFrame) -> String {
        var line = #"{"seq":"#
        line.reserveCapacity(frame.text.utf8.count + 80)
        line += String(seq)
        line += #","kind":""#
        line += frame.kind.rawValue
        line += "\""
        if let reason = frame.expectedReason {
            line += #","reason":""#
            line += reason.rawValue
            line += "\""
        }
        line += #","frame":"#
        appendQuoted(frame.text, to: &line)
        line += "}"
        return line
    }

    /// Appends `value` as a JSON string literal.
    static func appendQuoted(_ value: String, to text: inout String) {
        text += "\""
        // Fast path: nothing to escape (the usual case).
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            text += value
        } else {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": text += "\\\""
                case "\\": text += "\\\\"
                case "\n": text += "\\n"
                case "\r": text += "\\r"
                case "\t": text += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default:
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        text += "\""
    }
}
