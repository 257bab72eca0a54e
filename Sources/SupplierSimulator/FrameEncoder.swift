import Contracts

/// Writes journal lines as JSON text by hand: the feed runs at up to 50,000 frames/s and
/// JSONEncoder would cost most of a core at that rate. An update's text is
/// `OddsUpdate.jsonString()`, the bytes the processor writes to the read models too.
enum FrameEncoder {
    static let source = "supplier-simulator"

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
