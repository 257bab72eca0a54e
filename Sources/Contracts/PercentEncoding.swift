/// RFC 3986 percent-encoding, as HTTP clients apply it to path segments and query components
/// (encodeURIComponent, generated OpenAPI clients: `br.serie-a:2026:r38` travels as
/// `br.serie-a%3A2026%3Ar38`). Pure functions, no I/O.
public enum PercentEncoding {
    /// Decodes every `%XX` exactly once (`%253A` gives `%3A`, not `:`). With `plusAsSpace`
    /// (form-encoded query components) a `+` is a space. nil when a `%` is not followed by two
    /// hex digits, or when the decoded bytes are not UTF-8.
    public static func decode(_ text: some StringProtocol, plusAsSpace: Bool = false) -> String? {
        let utf8 = text.utf8
        guard utf8.contains(UInt8(ascii: "%")) || (plusAsSpace && utf8.contains(UInt8(ascii: "+"))) else {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                guard let (decoded, next) = escape(at: index, in: utf8) else { return nil }
                bytes.append(decoded)
                index = next
            } else {
                bytes.append(plusAsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// RFC 3986 §6.2.2.2 normalization of a path: `%XX` escapes of unreserved characters
    /// (`A-Z a-z 0-9 - . _ ~`) are replaced by the character, so `/v1/%65vents` is `/v1/events`.
    /// Every other escape (`%2F`, `%3A`, `%25`, malformed ones) is kept as written: a segment keeps
    /// its boundaries and is decoded once, later, as a parameter.
    public static func normalizingUnreservedEscapes(_ path: String) -> String {
        let utf8 = path.utf8
        guard utf8.contains(UInt8(ascii: "%")) else { return path }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"), let (decoded, next) = escape(at: index, in: utf8), isUnreserved(decoded) {
                bytes.append(decoded)
                index = next
                continue
            }
            bytes.append(byte)
            index = utf8.index(after: index)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `A-Z a-z 0-9 - . _ ~` (RFC 3986 §2.3).
    public static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The byte a `%XX` at `index` stands for, and the index after it; nil when malformed.
    private static func escape<View: Collection<UInt8>>(at index: View.Index, in utf8: View) -> (UInt8, View.Index)? {
        let high = utf8.index(after: index)
        guard high != utf8.endIndex, let highValue = hexValue(utf8[high]) else { return nil }
        let low = utf8.index(after: high)
        guard low != utf8.endIndex, let lowValue = hexValue(utf8[low]) else { return nil }
        return (highValue << 4 | lowValue, utf8.index(after: low))
    }
}
