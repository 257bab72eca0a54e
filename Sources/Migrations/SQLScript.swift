/// Splits a SQL script into statements. PostgresNIO speaks only the extended protocol, which
/// takes one statement at a time, so migrations are run statement by statement inside one
/// transaction. Quotes, dollar-quoted bodies and comments are respected.
public enum SQLScript {
    public static func statements(in script: String) -> [String] {
        let characters = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0

        func flush() {
            let statement = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !statement.isEmpty, !isOnlyComments(statement) { statements.append(statement) }
            current = String.UnicodeScalarView()
        }

        while index < characters.count {
            let scalar = characters[index]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            switch scalar {
            case "-" where next == "-":
                while index < characters.count, characters[index] != "\n" {
                    current.append(characters[index]); index += 1
                }
            case "/" where next == "*":
                var depth = 0
                repeat {
                    if characters[index] == "/", index + 1 < characters.count, characters[index + 1] == "*" {
                        depth += 1; current.append("/"); current.append("*"); index += 2; continue
                    }
                    if characters[index] == "*", index + 1 < characters.count, characters[index + 1] == "/" {
                        depth -= 1; current.append("*"); current.append("/"); index += 2; continue
                    }
                    current.append(characters[index]); index += 1
                } while depth > 0 && index < characters.count
            case "'", "\"":
                current.append(scalar); index += 1
                while index < characters.count {
                    current.append(characters[index])
                    if characters[index] == scalar {
                        // A doubled quote is an escaped quote inside the literal.
                        if index + 1 < characters.count, characters[index + 1] == scalar {
                            current.append(characters[index + 1]); index += 2; continue
                        }
                        index += 1; break
                    }
                    index += 1
                }
            case "$":
                if let tag = dollarTag(characters, at: index) {
                    current.append(contentsOf: tag.unicodeScalars); index += tag.unicodeScalars.count
                    let tagScalars = Array(tag.unicodeScalars)
                    while index < characters.count {
                        if characters[index] == "$", index + tagScalars.count <= characters.count,
                           Array(characters[index..<index + tagScalars.count]) == tagScalars {
                            current.append(contentsOf: tagScalars); index += tagScalars.count; break
                        }
                        current.append(characters[index]); index += 1
                    }
                } else {
                    current.append(scalar); index += 1
                }
            case ";":
                flush(); index += 1
            default:
                current.append(scalar); index += 1
            }
        }
        flush()
        return statements
    }

    /// `$$` or `$tag$` starting at `index`, if one does.
    static func dollarTag(_ characters: [Unicode.Scalar], at index: Int) -> String? {
        var end = index + 1
        while end < characters.count, characters[end] == "_" || characters[end].properties.isAlphabetic
                || (end > index + 1 && ("0"..."9").contains(characters[end])) {
            end += 1
        }
        guard end < characters.count, characters[end] == "$" else { return nil }
        return String(String.UnicodeScalarView(characters[index...end]))
    }

    static func isOnlyComments(_ statement: String) -> Bool {
        statement.split(separator: "\n").allSatisfy {
            let line = $0.trimmingCharacters(in: .whitespaces)
            return line.isEmpty || line.hasPrefix("--")
        }
    }
}

import Foundation
