import Contracts
import Foundation

/// Makes `contracts/openapi.yaml` self-contained for `GET /openapi.yaml`: every `$ref` into a
/// file beside it (`./odds-update.v1.schema.json#/properties/event_id`) becomes a local
/// `#/components/schemas/...` entry holding that schema (as a JSON flow mapping, which YAML
/// reads as is). Refs inside the copied schemas are followed the same way. The rest of the text
/// is kept byte for byte, so contracts/ stays the single source. Pure except for `load`.
enum OpenAPIBundle {
    struct Failure: Error, CustomStringConvertible, Equatable {
        let description: String
    }

    /// Reads the document at `path` and bundles it with the files it refers to.
    static func load(path: String) throws -> String {
        let document: String
        do {
            document = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Failure(description: "cannot read \(path): \(error.localizedDescription)")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try bundle(document) { relative in
            let file = directory.appendingPathComponent(relative).path
            guard let data = FileManager.default.contents(atPath: file) else {
                throw Failure(description: "\(path) refers to \(relative), which cannot be read at \(file)")
            }
            return Array(data)
        }
    }

    /// `load` returns the bytes of a file named relative to the document (e.g. `odds-update.v1.schema.json`).
    static func bundle(_ document: String, load: @escaping (String) throws -> [UInt8]) throws -> String {
        var lines = document.components(separatedBy: "\n")
        var resolver = Resolver(load: load)
        for (index, line) in lines.enumerated() {
            guard let ref = RefLine(line), !ref.target.hasPrefix("#") else { continue }
            let name = try resolver.component(for: ref.target, relativeTo: "")
            lines[index] = "\(ref.lead)$ref: '#/components/schemas/\(name)'"
        }
        try resolver.drain()
        if !resolver.components.isEmpty { try insert(resolver.components, into: &lines) }
        let bundled = resolver.components.isEmpty ? document : lines.joined(separator: "\n")
        if let external = firstExternalRef(in: bundled) {
            throw Failure(description: "a $ref into another file is written in a form the bundler does not rewrite: \(external)")
        }
        return bundled
    }

    /// A block-style `$ref: target` line (optionally a sequence entry `- $ref: target`).
    struct RefLine {
        let lead: String
        let target: String

        init?(_ line: String) {
            let indent = line.prefix(while: { $0 == " " })
            var rest = line.dropFirst(indent.count)
            var lead = String(indent)
            if rest.hasPrefix("- ") {
                let dash = rest.prefix(while: { $0 == "-" || $0 == " " })
                lead += dash
                rest = rest.dropFirst(dash.count)
            }
            guard rest.hasPrefix("$ref:") else { return nil }
            var value = rest.dropFirst("$ref:".count).trimmingCharacters(in: .whitespaces)
            if let comment = value.range(of: " #") { value = String(value[..<comment.lowerBound]).trimmingCharacters(in: .whitespaces) }
            if value.count >= 2, let first = value.first, first == "'" || first == "\"", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard !value.isEmpty else { return nil }
            self.lead = lead
            self.target = value
        }
    }

    /// Follows refs into files and records one component per (file, JSON pointer).
    struct Resolver {
        let load: (String) throws -> [UInt8]
        private(set) var components: [(name: String, comment: String, value: JSONValue)] = []
        private var names: [String: String] = [:]  // "file#pointer" -> component name
        private var files: [String: JSONValue] = [:]
        private var pending: [(key: String, name: String, file: String, pointer: String)] = []

        init(load: @escaping (String) throws -> [UInt8]) { self.load = load }

        /// The component name for `target` (`file#pointer`, or `#pointer` inside `base`).
        mutating func component(for target: String, relativeTo base: String) throws -> String {
            let hash = target.firstIndex(of: "#") ?? target.endIndex
            let filePart = String(target[..<hash])
            let fragment = hash == target.endIndex ? "" : String(target[target.index(after: hash)...])
            let file = filePart.isEmpty ? base : try Self.join(base, filePart)
            guard let pointer = PercentEncoding.decode(fragment) else {
                throw Failure(description: "$ref \(target): the fragment is not valid percent-encoding")
            }
            let key = "\(file)#\(pointer)"
            if let name = names[key] { return name }
            let name = Self.componentName(file: file, pointer: pointer)
            guard !names.values.contains(name) else {
                throw Failure(description: "$ref \(target): component name \(name) is already used by another reference")
            }
            names[key] = name
            pending.append((key, name, file, pointer))
            return name
        }

        mutating func drain() throws {
            while !pending.isEmpty {
                let next = pending.removeFirst()
                let root = try document(next.file)
                guard let schema = Self.resolve(pointer: next.pointer, in: root) else {
                    throw Failure(description: "$ref ./\(next.key): the pointer does not resolve in \(next.file)")
                }
                let rewritten = try rewriteRefs(in: schema, file: next.file)
                components.append((next.name, "./\(next.file)#\(next.pointer)", rewritten))
            }
        }

        private mutating func document(_ file: String) throws -> JSONValue {
            if let cached = files[file] { return cached }
            let bytes = try load(file)
            let parsed: JSONValue
            do {
                parsed = try JSONParser.parse(bytes)
            } catch {
                throw Failure(description: "\(file) is not JSON: \(error)")
            }
            files[file] = parsed
            return parsed
        }

        private mutating func rewriteRefs(in value: JSONValue, file: String) throws -> JSONValue {
            switch value {
            case .object(let members):
                var result: [String: JSONValue] = [:]
                for (key, member) in members {
                    if key == "$id" {
                        throw Failure(description: "\(file): a referenced schema has its own $id, which the bundler does not support")
                    }
                    if key == "$ref", case .string(let target) = member {
                        result[key] = .string("#/components/schemas/\(try component(for: target, relativeTo: file))")
                    } else {
                        result[key] = try rewriteRefs(in: member, file: file)
                    }
                }
                return .object(result)
            case .array(let items):
                return .array(try items.map { try rewriteRefs(in: $0, file: file) })
            default:
                return value
            }
        }

        /// `base` and `relative` are paths relative to the document's folder.
        static func join(_ base: String, _ relative: String) throws -> String {
            guard !relative.contains("://"), !relative.hasPrefix("/") else {
                throw Failure(description: "$ref \(relative): only files beside the document can be bundled")
            }
            var parts = base.split(separator: "/").dropLast().map(String.init)
            for part in relative.split(separator: "/") {
                switch part {
                case ".": continue
                case "..":
                    guard !parts.isEmpty else { throw Failure(description: "$ref \(relative) leaves the document's folder") }
                    parts.removeLast()
                default: parts.append(String(part))
                }
            }
            return parts.joined(separator: "/")
        }

        /// RFC 6901 JSON pointer ("" is the whole document).
        static func resolve(pointer: String, in root: JSONValue) -> JSONValue? {
            guard !pointer.isEmpty else { return root }
            guard pointer.hasPrefix("/") else { return nil }
            var node = root
            for raw in pointer.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
                let token = raw.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                switch node {
                case .object(let members):
                    guard let next = members[token] else { return nil }
                    node = next
                case .array(let items):
                    guard let index = Int(token), items.indices.contains(index) else { return nil }
                    node = items[index]
                default:
                    return nil
                }
            }
            return node
        }

        /// `odds-update.v1.schema.json` + `/properties/event_id` → `odds-update.v1.properties.event_id`.
        static func componentName(file: String, pointer: String) -> String {
            var stem = file.split(separator: "/").last.map(String.init) ?? file
            for suffix in [".json", ".yaml", ".yml", ".schema"] where stem.hasSuffix(suffix) {
                stem.removeLast(suffix.count)
            }
            let tokens = pointer.split(separator: "/").map { $0.hasPrefix("$") ? String($0.dropFirst()) : String($0) }
            let name = ([stem] + tokens).joined(separator: ".")
            return String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        }
    }

    /// Adds the components right under `components:` → `schemas:` (creating either when absent).
    static func insert(_ components: [(name: String, comment: String, value: JSONValue)], into lines: inout [String]) throws {
        func indent(_ line: String) -> Int { line.prefix(while: { $0 == " " }).count }
        func isContent(_ line: String) -> Bool {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return !trimmed.isEmpty && !trimmed.hasPrefix("#")
        }
        func key(_ line: String) -> String? {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard let colon = trimmed.firstIndex(of: ":") else { return nil }
            let after = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard after.isEmpty || after.hasPrefix("#") else { return nil }
            return String(trimmed[..<colon])
        }

        guard let componentsLine = lines.firstIndex(where: { indent($0) == 0 && key($0) == "components" }) else {
            if lines.last == "" { lines.removeLast() }
            lines += ["components:", "  schemas:"] + components.flatMap { entryLines($0, indent: "    ") } + [""]
            return
        }
        var end = componentsLine + 1
        while end < lines.count, !isContent(lines[end]) || indent(lines[end]) > 0 { end += 1 }
        let children = (componentsLine + 1..<end).filter { isContent(lines[$0]) }
        let childIndent = children.first.map { indent(lines[$0]) } ?? 2
        guard let schemasLine = children.first(where: { indent(lines[$0]) == childIndent && key(lines[$0]) == "schemas" }) else {
            let entries = components.flatMap { entryLines($0, indent: String(repeating: " ", count: childIndent * 2)) }
            lines.insert(contentsOf: [String(repeating: " ", count: childIndent) + "schemas:"] + entries, at: componentsLine + 1)
            return
        }
        var schemasEnd = schemasLine + 1
        while schemasEnd < end, !isContent(lines[schemasEnd]) || indent(lines[schemasEnd]) > childIndent { schemasEnd += 1 }
        let entryLinesIndex = (schemasLine + 1..<schemasEnd).filter { isContent(lines[$0]) }
        let entryIndent = entryLinesIndex.first.map { indent(lines[$0]) } ?? childIndent * 2
        let existing = Set(entryLinesIndex.filter { indent(lines[$0]) == entryIndent }.compactMap { key(lines[$0]) })
        for component in components where existing.contains(component.name) {
            throw Failure(description: "components.schemas already has \(component.name)")
        }
        let entries = components.flatMap { entryLines($0, indent: String(repeating: " ", count: entryIndent)) }
        lines.insert(contentsOf: entries, at: schemasLine + 1)
    }

    private static func entryLines(_ component: (name: String, comment: String, value: JSONValue), indent: String) -> [String] {
        ["\(indent)# bundled from \(component.comment)", "\(indent)\(component.name): \(flow(component.value))"]
    }

    /// The value as one line of JSON, written so that YAML 1.1 readers (PyYAML) read the same
    /// value: keys sorted, `1e3` written as `1.0e+3`.
    static func flow(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return yamlNumber(number.text)
        case .string(let text): return quoted(text)
        case .array(let items): return "[" + items.map(flow).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.keys.sorted().map { "\(quoted($0)): \(flow(members[$0]!))" }.joined(separator: ", ") + "}"
        }
    }

    static func yamlNumber(_ text: String) -> String {
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) else { return text }
        var mantissa = String(text[..<e])
        var exponent = String(text[text.index(after: e)...])
        if !mantissa.contains(".") { mantissa += ".0" }
        if !exponent.hasPrefix("-") && !exponent.hasPrefix("+") { exponent = "+" + exponent }
        return "\(mantissa)e\(exponent)"
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                    || scalar.value == 0xFEFF || (0xD800...0xDFFF).contains(scalar.value) || scalar.value >= 0xFFFE && scalar.value <= 0xFFFF {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// The first `$ref` whose target is not `#...`, if any (the bundled text must have none).
    static func firstExternalRef(in text: String) -> String? {
        for line in text.components(separatedBy: "\n") {
            var rest = Substring(line)
            while let range = rest.range(of: "$ref") {
                var after = rest[range.upperBound...]
                if after.first == "\"" || after.first == "'" { after = after.dropFirst() }
                after = after.drop(while: { $0 == " " })
                guard after.first == ":" else { rest = after; continue }
                after = after.dropFirst().drop(while: { $0 == " " })
                if after.first == "\"" || after.first == "'" { after = after.dropFirst() }
                if after.first != "#" && !after.isEmpty { return line.trimmingCharacters(in: .whitespaces) }
                rest = after
            }
        }
        return nil
    }
}
