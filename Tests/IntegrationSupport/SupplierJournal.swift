import Foundation

/// One line of the supplier-simulator journal (`SUPPLIER_JOURNAL`): the sequence number, what the
/// simulator says the frame is (`valid`, `duplicate`, `out_of_order`, `malformed`, `invalid`), the
/// validation code it expects for the last two, and the exact frame text it handed to its clients.
public struct JournalEntry: Sendable, Equatable {
    public let seq: Int
    public let kind: String
    public let reason: String?
    public let frame: String

    public init(seq: Int, kind: String, reason: String?, frame: String) {
        self.seq = seq
        self.kind = kind
        self.reason = reason
        self.frame = frame
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
            return JournalEntry(seq: seq, kind: kind, reason: object["reason"] as? String, frame: frame)
        }
    }
}
