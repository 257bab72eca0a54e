/// Builds JSON text byte by byte, for the encoders written by hand (the feed's frames, the
/// supplier's updates and journal lines), and makes one `String` at the end.
///
/// Why bytes: a feed frame quotes its payload, an OddsUpdate of some forty `"` characters.
/// Appending the unescaped runs between them as `Substring`s cost ~19 % of the supplier's CPU
/// at 10,000 frames/s (`perf`: index alignment and capacity checks on every small append);
/// copying bytes into one array costs a fraction of that.
public struct JSONTextWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Text that needs no escaping: keys, punctuation, numbers already formatted.
    public mutating func raw(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func integer(_ value: some BinaryInteger) {
        raw(String(value))
    }

    /// `value` as a JSON string literal, escaped as `ContractCoding.encoder` does: `"`, `\\`
    /// and control characters (`\b`, `\f`, `\n`, `\r`, `\t`, else `\u00xx`); everything else
    /// (`/` and UTF-8 included) as it is.
    public mutating func quoted(_ value: String) {
        Self.appendQuoted(value, to: &bytes)
    }

    /// `quoted` for a caller that builds its own byte array.
    public static func appendQuoted(_ value: String, to bytes: inout [UInt8]) {
        var value = value
        bytes.append(UInt8(ascii: "\""))
        value.withUTF8 { source in
            // Unescaped runs are copied whole; every byte that needs an escape is ASCII.
            var runStart = 0
            for (offset, byte) in source.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[runStart..<offset]))
                appendEscape(of: byte, to: &bytes)
                runStart = offset + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static func appendEscape(of byte: UInt8, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        case UInt8(ascii: "\n"): bytes.append(UInt8(ascii: "n"))
        case UInt8(ascii: "\r"): bytes.append(UInt8(ascii: "r"))
        case UInt8(ascii: "\t"): bytes.append(UInt8(ascii: "t"))
        default:
            bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigit(byte >> 4), hexDigit(byte & 0x0F)])
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// A number as `ContractCoding.encoder` writes a `Double`: the shortest text that reads back
    /// as the same value, without a trailing `.0` (`2.15`, `1000`). Not JSON for NaN or
    /// infinity (`nan`, `inf`), which the supplier's fault injection sends on purpose.
    public mutating func number(_ value: Double) {
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        raw(text)
    }

    /// JSON text that is already encoded (an embedded document).
    public mutating func json(_ encoded: [UInt8]) {
        bytes.append(contentsOf: encoded)
    }

    /// The text written so far (valid UTF-8: only whole strings and ASCII went in).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
