import Contracts
import HTTPTypes
import Hummingbird
import HummingbirdCore

/// The query string of a request, decoded once: `%XX` escapes and `+` (a space, as forms and
/// most HTTP clients send it) in names and values. Pure, unit-tested.
struct QueryParameters: Sendable {
    private struct Pair: Sendable {
        let name: String
        /// nil when the value is not valid percent-encoding.
        let value: String?
        let raw: Substring
    }

    private let pairs: [Pair]

    /// Throws `bad_request` for a parameter name that is not valid percent-encoding.
    init(query: String?) throws {
        var pairs: [Pair] = []
        for component in (query ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let parts = component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = PercentEncoding.decode(parts[0], plusAsSpace: true) else {
                throw APIError.badRequest("bad_request", "query parameter name \"\(parts[0])\" is not valid percent-encoding")
            }
            let value = parts.count > 1 ? PercentEncoding.decode(parts[1], plusAsSpace: true) : ""
            pairs.append(Pair(name: name, value: value, raw: parts.count > 1 ? parts[1] : ""))
        }
        self.pairs = pairs
    }

    /// The decoded value of the first `name` parameter, nil when absent. Throws `code` (400) when
    /// that value is not valid percent-encoding.
    func value(_ name: String, code: String) throws -> String? {
        guard let pair = pairs.first(where: { $0.name == name }) else { return nil }
        guard let value = pair.value else {
            throw APIError.badRequest(code, "query parameter \(name) (\"\(pair.raw)\") is not valid percent-encoding")
        }
        return value
    }
}

/// The public port's routes and their methods, so that a known path asked with another method
/// gets 405 with `Allow` (Hummingbird's router answers 404 for both). Templates use the router's
/// syntax (`/v1/events/:id/odds`); segments are matched the way its trie matches them.
struct RouteTable: Sendable {
    struct Route: Sendable {
        let template: String
        let segments: [Substring]
        let methods: [HTTPRequest.Method]
    }

    let routes: [Route]

    init(_ routes: [(template: String, methods: [HTTPRequest.Method])]) {
        self.routes = routes.map {
            Route(template: $0.template, segments: Self.segments($0.template), methods: $0.methods)
        }
    }

    /// The methods `path` answers, nil when no route has that path.
    func allowedMethods(for path: String) -> [HTTPRequest.Method]? {
        let requested = Self.segments(path)
        guard let route = routes.first(where: { route in
            route.segments.count == requested.count
                && zip(route.segments, requested).allSatisfy { pattern, segment in pattern.first == ":" || pattern == segment }
        }) else { return nil }
        return route.methods
    }

    static func allowHeader(_ methods: [HTTPRequest.Method]) -> String {
        methods.map(\.rawValue).joined(separator: ", ")
    }

    private static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}

/// RFC 3986 normalization of the request target before routing: escaped unreserved characters
/// are decoded (`/v1/%65vents` is `/v1/events`). Reserved escapes such as `%3A` stay, so a path
/// parameter keeps its segment and is decoded once by the handler (`RequestValidation`).
enum RequestTargetNormalization {
    static func normalizedPath(_ target: String) -> String {
        let pathEnd = target.firstIndex(of: "?") ?? target.endIndex
        let path = String(target[..<pathEnd])
        let normalized = PercentEncoding.normalizingUnreservedEscapes(path)
        return normalized == path ? target : normalized + target[pathEnd...]
    }

    static func normalized(_ request: Request) -> Request {
        guard let target = request.head.path, target.utf8.contains(UInt8(ascii: "%")) else { return request }
        let normalized = normalizedPath(target)
        guard normalized != target else { return request }
        var head = request.head
        head.path = normalized
        return Request(head: head, body: request.body)
    }

    static func wrap(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        { request, writer, channel in
            try await responder(normalized(request), writer, channel)
        }
    }
}
