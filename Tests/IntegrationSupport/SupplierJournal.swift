import Foundation

/// One line of the supplier-simulator journal (`SUPPLIER_JOURNAL`): the stream position (epoch,
/// seq), what the simulator says the frame is (`valid`, `duplicate`, `out_of_order`, `malformed`,
/// `invalid`), the validation code it expects for the last two, and the exact OddsUpdate text (the
/// payload of the stream frame it handed to its clients). Lines of kind `initial` (seq 0) come
/// first: every market's state before the stream's first frame (what a snapshot sends for a market
/// that has not moved yet); they are not stream frames.
public struct JournalEntry: Sendable, Equatable {
    public let epoch: UInt64
    public let seq: Int
    public let kind: String
    public let reason: String?
    public let frame: String

    public init(epoch: UInt64 = 0, seq: Int, kind: String, reason: String?, frame: String) {
        self.epoch = epoch
        self.seq = seq
        self.kind = kind
        self.reason = reason
        self.frame = frame
    }

    /// A frame of the stream (not an `initial` line).
    public var isStreamFrame: Bool { kind != "initial" }

    /// The stream frames of a journal, in order (without the `initial` lines).
    public static func streamFrames(_ path: String) throws -> [JournalEntry] {
        try read(path).filter(\.isStreamFrame)
    }

    public struct Unreadable: Error, CustomStringConvertible {
        public let line: String
        public var description: String { "unreadable journal line: \(line.prefix(200))" }
    }

    /// Every line of the journal at `path`, in order.
    public static func read(_ path: String) throws -> [JournalEntry] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let seq = object["seq"] as? Int, let kind = object["kind"] as? String,
                  let frame = object["frame"] as? String
            else { throw Unreadable(line: String(line)) }
            let epoch = (object["epoch"] as? NSNumber)?.uint64Value ?? 0
            return JournalEntry(epoch: epoch, seq: seq, kind: kind, reason: object["reason"] as? String, frame: frame)
        }
    }
}
