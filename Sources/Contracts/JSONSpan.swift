/// Where a top-level member's value lies in a JSON object's bytes, without building any value:
/// lets a relay forward a member it does not need to change (odds-service splices a broadcast's
/// `payload` into its `odds` frame instead of decoding and encoding it again). Nil for input
/// that is not an object with that key; it checks only as much syntax as it walks, so use it on
/// bytes that were also decoded (the caller still validates them).
public enum JSONSpan {
    public static func valueRange(ofTopLevelKey key: String, in bytes: [UInt8]) -> Range<Int>? {
        var scanner = Scanner(bytes: bytes)
        scanner.skipWhitespace()
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        let wanted = Array(key.utf8)
        var found: Range<Int>?
        scanner.skipWhitespace()
        if scanner.take(UInt8(ascii: "}")) { return nil }
        while true {
            scanner.skipWhitespace()
            guard let name = scanner.stringRange() else { return nil }
            scanner.skipWhitespace()
            guard scanner.take(UInt8(ascii: ":")) else { return nil }
            scanner.skipWhitespace()
            let start = scanner.index
            guard scanner.skipValue(depth: 0) else { return nil }
            // Compared as written (a key spelled with escapes does not match); a key given twice
            // is refused, since decoders differ on which one wins.
            if bytes[name].elementsEqual(wanted) {
                if found != nil { return nil }
                found = start..<scanner.index
            }
            scanner.skipWhitespace()
            if scanner.take(UInt8(ascii: "}")) {
                scanner.skipWhitespace()
                return scanner.index == bytes.count ? found : nil
            }
            guard scanner.take(UInt8(ascii: ",")) else { return nil }
        }
    }

    /// Appends `text` as a JSON string literal, escaped as `ContractCoding.encoder` does.
    public static func appendString(_ text: String, to output: inout [UInt8]) {
        JSONTextWriter.appendQuoted(text, to: &output)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func take(_ byte: UInt8) -> Bool {
            guard current == byte else { return false }
            index += 1
            return true
        }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
        }

        /// The contents (between the quotes) of the string at `index`.
        mutating func stringRange() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while let byte = current {
                if byte == UInt8(ascii: "\\") {
                    index += 2
                } else if byte == UInt8(ascii: "\"") {
                    index += 1
                    return start..<(index - 1)
                } else {
                    index += 1
                }
            }
            return nil
        }

        mutating func skipValue(depth: Int) -> Bool {
            guard depth < 64, let byte = current else { return false }
            switch byte {
            case UInt8(ascii: "\""):
                return stringRange() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close = byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                index += 1
                skipWhitespace()
                if take(close) { return true }
                while true {
                    if byte == UInt8(ascii: "{") {
                        guard stringRange() != nil else { return false }
                        skipWhitespace()
                        guard take(UInt8(ascii: ":")) else { return false }
                        skipWhitespace()
                    }
                    guard skipValue(depth: depth + 1) else { return false }
                    skipWhitespace()
                    if take(close) { return true }
                    guard take(UInt8(ascii: ",")) else { return false }
                    skipWhitespace()
                }
            default:
                // A number or a literal: up to the next delimiter.
                let start = index
                while let next = current, next != UInt8(ascii: ","), next != UInt8(ascii: "}"), next != UInt8(ascii: "]"),
                      next != 0x20, next != 0x0A, next != 0x0D, next != 0x09 {
                    index += 1
                }
                return index > start
            }
        }
    }
}
