import Contracts
import Foundation
import Hummingbird
import Logging

/// A 4xx/5xx answer in the API's error shape `{"error":{"code":"...","message":"..."}}`.
struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    let status: HTTPResponse.Status
    let code: String
    let message: String

    var description: String { "\(status.code) \(code): \(message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONResponse.make(status: status, body: APIErrorResponse(code: code, message: message))
    }

    static func badRequest(_ code: String, _ message: String) -> APIError { .init(status: .badRequest, code: code, message: message) }
    static func eventNotFound(_ eventId: String) -> APIError {
        .init(status: .notFound, code: "event_not_found", message: "unknown event \"\(eventId)\"")
    }
}

enum JSONResponse {
    static func make(status: HTTPResponse.Status = .ok, body: some Encodable) -> Response {
        make(status: status, body: encode(body))
    }

    static func make(status: HTTPResponse.Status = .ok, body: ByteBuffer) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: body))
    }

    static func encode(_ value: some Encodable) -> ByteBuffer {
        ByteBuffer(bytes: (try? ContractCoding.encoder.encode(value)) ?? Data("{}".utf8))
    }
}

/// Turns every error (router 404/405, thrown HTTPError, unexpected errors) into the API's JSON
/// error shape, so clients only ever parse one error format.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    /// A path of this table asked with another method is 405 with `Allow`, not 404.
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let allowed = routes.allowedMethods(for: request.uri.path), !allowed.contains(request.method) else {
                return JSONResponse.make(status: .notFound, body: APIErrorResponse(
                    code: "not_found", message: "no route for \(request.method.rawValue) \(request.uri.path)"))
            }
            var response = JSONResponse.make(status: .methodNotAllowed, body: APIErrorResponse(
                code: "method_not_allowed",
                message: "\(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(RouteTable.allowHeader(allowed))"))
            response.headers[.allow] = RouteTable.allowHeader(allowed)
            return response
        } catch let error as APIError {
            return JSONResponse.make(status: error.status, body: APIErrorResponse(code: error.code, message: error.message))
        } catch let error as HTTPError {
            let code: String = switch error.status {
            case .notFound: "not_found"
            case .methodNotAllowed: "method_not_allowed"
            case .badRequest: "bad_request"
            default: error.status.code < 500 ? "bad_request" : "internal"
            }
            return JSONResponse.make(status: error.status, body: APIErrorResponse(
                code: code, message: error.body ?? error.status.reasonPhrase))
        } catch let error as OddsQueryService.Unavailable {
            logger.warning("read models unavailable", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return JSONResponse.make(status: .serviceUnavailable, body: APIErrorResponse(
                code: "unavailable", message: "the odds read models are unavailable, retry later"))
        } catch {
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return JSONResponse.make(status: .internalServerError, body: APIErrorResponse(
                code: "internal", message: "internal error"))
        }
    }
}

/// Path and query rules of the REST API (pure, unit-tested).
enum RequestValidation {
    static let maxHistoryLimit = 1000
    static let defaultHistoryLimit = 100

    /// `raw` is the path segment as sent: it is percent-decoded once, then checked.
    static func eventId(_ raw: String?) throws -> String {
        guard let raw, let decoded = PercentEncoding.decode(raw) else {
            throw APIError.badRequest("invalid_event_id", "event id \"\(raw ?? "")\" is not valid percent-encoding")
        }
        guard OddsUpdateValidator.isValidEventId(decoded) else {
            throw APIError.badRequest("invalid_event_id", "event id must be 1 to 64 characters of A-Z a-z 0-9 _ . : -")
        }
        return decoded
    }

    static func market(_ raw: String?) throws -> String {
        guard let raw else { throw APIError.badRequest("invalid_market", "query parameter market is required") }
        guard OddsUpdateValidator.isValidMarket(raw) else {
            throw APIError.badRequest("invalid_market", "market must be 1 to 32 characters of a-z 0-9 _")
        }
        return raw
    }

    static func limit(_ raw: String?, default defaultValue: Int, max maxValue: Int) throws -> Int {
        guard let raw else { return defaultValue }
        guard let value = Int(raw), (1...maxValue).contains(value) else {
            throw APIError.badRequest("invalid_limit", "limit must be an integer from 1 to \(maxValue)")
        }
        return value
    }
}

/// `GET /v1/events...` and `GET /openapi.yaml`.
struct OddsRESTController: Sendable {
    let query: OddsQueryService
    /// The feed status overlay: every answer shows each market's effective status.
    let board: FeedStatusBoard
    let metrics: ServiceMetrics
    let openAPIDocument: String?
    let maxEventsPerPage: Int
    let defaultEventsPerPage: Int
    /// Encoded answers of the hot reads, per event (per page size for the list).
    let oddsAnswers: EncodedAnswerCache<EventOddsResponse>
    let marketAnswers: EncodedAnswerCache<MarketListResponse>
    let eventListAnswers: EncodedAnswerCache<EventListResponse>

    init(query: OddsQueryService, board: FeedStatusBoard, metrics: ServiceMetrics, openAPIDocument: String?,
         maxEventsPerPage: Int, defaultEventsPerPage: Int, cachedEvents: Int = 10_000) {
        self.query = query
        self.board = board
        self.metrics = metrics
        self.openAPIDocument = openAPIDocument
        self.maxEventsPerPage = maxEventsPerPage
        self.defaultEventsPerPage = defaultEventsPerPage
        oddsAnswers = EncodedAnswerCache(capacity: cachedEvents)
        marketAnswers = EncodedAnswerCache(capacity: cachedEvents)
        eventListAnswers = EncodedAnswerCache(capacity: 64)
    }

    /// The GET routes `addRoutes` adds, named once for the router and the 405 table.
    enum Path {
        static let events = "/v1/events"
        static let markets = "/v1/events/:id/markets"
        static let odds = "/v1/events/:id/odds"
        static let history = "/v1/events/:id/odds/history"
        static let openAPI = "/openapi.yaml"
    }

    static let routePaths = [Path.events, Path.markets, Path.odds, Path.history, Path.openAPI]

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get(RouterPath(Self.Path.events)) { request, _ in
            try await timed("/v1/events") {
                let parameters = try QueryParameters(query: request.uri.query)
                let limit = try RequestValidation.limit(parameters.value("limit", code: "invalid_limit"),
                                                        default: defaultEventsPerPage, max: maxEventsPerPage)
                let events = try await query.events(limit: limit)
                let overlay = board.overlay
                return eventListAnswers.response(key: String(limit),
                                                 answer: EventListResponse(events: events.map { $0.withOverlay(overlay) }))
            }
        }
        router.get(RouterPath(Self.Path.markets)) { _, context in
            try await timed("/v1/events/{id}/markets") {
                let eventId = try RequestValidation.eventId(context.parameters.get("id"))
                let markets = try await query.currentOdds(eventId: eventId)
                guard !markets.isEmpty else { throw APIError.eventNotFound(eventId) }
                let overlay = board.overlay
                return marketAnswers.response(key: eventId, answer: MarketListResponse(eventId: eventId, markets: markets.map {
                    MarketSummary($0, overlay: overlay)
                }))
            }
        }
        router.get(RouterPath(Self.Path.odds)) { _, context in
            try await timed(Self.oddsRoute) {
                let eventId = try RequestValidation.eventId(context.parameters.get("id"))
                let markets = try await query.currentOdds(eventId: eventId)
                guard let body = oddsBody(eventId: eventId, markets: markets) else { throw APIError.eventNotFound(eventId) }
                return JSONResponse.make(body: body)
            }
        }
        router.get(RouterPath(Self.Path.history)) { request, context in
            try await timed("/v1/events/{id}/odds/history") {
                let eventId = try RequestValidation.eventId(context.parameters.get("id"))
                let parameters = try QueryParameters(query: request.uri.query)
                let market = try RequestValidation.market(parameters.value("market", code: "invalid_market"))
                let limit = try RequestValidation.limit(parameters.value("limit", code: "invalid_limit"),
                                                        default: RequestValidation.defaultHistoryLimit,
                                                        max: RequestValidation.maxHistoryLimit)
                guard let history = try await query.history(eventId: eventId, market: market, limit: limit) else {
                    throw APIError.eventNotFound(eventId)
                }
                return JSONResponse.make(body: OddsHistoryResponse(eventId: eventId, market: market, history: history))
            }
        }
        router.get(RouterPath(Self.Path.openAPI)) { _, _ -> Response in
            guard let openAPIDocument else {
                throw APIError(status: .notFound, code: "not_found", message: "the OpenAPI document is not available")
            }
            return Response(status: .ok, headers: [.contentType: "application/yaml"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: openAPIDocument)))
        }
    }

    /// The metrics name of the current-odds route.
    static let oddsRoute = "/v1/events/{id}/odds"

    /// The body of `GET /v1/events/{id}/odds` for these markets with the feed status overlay
    /// applied (encoded once per distinct answer); nil for an unknown event (no markets).
    func oddsBody(eventId: String, markets: [OddsUpdate]) -> ByteBuffer? {
        guard let newest = markets.max(by: { $0.updatedAt < $1.updatedAt }) else { return nil }
        let overlay = board.overlay
        return oddsAnswers.body(key: eventId, answer: EventOddsResponse(
            eventId: eventId, homeTeam: newest.homeTeam, awayTeam: newest.awayTeam,
            markets: markets.map { MarketOdds($0, overlay: overlay) }))
    }

    private func timed(_ route: String, _ body: () async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        defer { metrics.restTimer(route: route).record(duration: ContinuousClock.now - start) }
        return try await body()
    }
}
