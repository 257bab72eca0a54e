import Foundation
import HTTPTypes
import NIOHTTP1
import Testing
@testable import OddsService

/// Path parameters, query parameters and routes of the REST API (pure; no server).
@Suite struct RequestTargetTests {
    func apiError<T>(_ body: () throws -> T) -> APIError? {
        do {
            _ = try body()
            return nil
        } catch let error as APIError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test(arguments: [
        ("MATCH%5F001", "MATCH_001"),
        ("MATCH_001", "MATCH_001"),
        ("br.serie-a%3A2026%3Ar38%3Afla-pal", "br.serie-a:2026:r38:fla-pal"),
        ("br.serie-a:2026:r38:fla-pal", "br.serie-a:2026:r38:fla-pal"),
        ("a%3Ab", "a:b"),
    ])
    func eventIdsArePercentDecodedThenChecked(segment: String, eventId: String) throws {
        #expect(try RequestValidation.eventId(segment) == eventId)
    }

    @Test(arguments: ["%ZZ", "MATCH%5", "bad%20id", "a%2Fb", "%253A", "%00", String(repeating: "x", count: 65), "%C3%A3"])
    func badOrBadlyEncodedEventIdsAre400(segment: String) {
        let error = apiError { try RequestValidation.eventId(segment) }
        #expect(error?.status == .badRequest, "\(segment)")
        #expect(error?.code == "invalid_event_id", "\(segment)")
    }

    @Test func queryParametersAreDecodedOnce() throws {
        let query = try QueryParameters(query: "%6Darket=%31x2&limit=%31%30&note=a+b%2Bc&flag&market=btts")
        #expect(try query.value("market", code: "invalid_market") == "1x2")  // the first one wins
        #expect(try query.value("limit", code: "invalid_limit") == "10")
        #expect(try query.value("note", code: "bad_request") == "a b+c")
        #expect(try query.value("flag", code: "bad_request") == "")
        #expect(try query.value("absent", code: "bad_request") == nil)
        #expect(try QueryParameters(query: nil).value("market", code: "invalid_market") == nil)
        #expect(try QueryParameters(query: "").value("market", code: "invalid_market") == nil)
        #expect(try QueryParameters(query: "market=%2531").value("market", code: "invalid_market") == "%31")
    }

    @Test func malformedEscapesInTheQueryAre400WithTheParametersCode() throws {
        let query = try QueryParameters(query: "market=%G1&limit=1%")
        #expect(apiError { try query.value("market", code: "invalid_market") }?.code == "invalid_market")
        #expect(apiError { try query.value("limit", code: "invalid_limit") }?.code == "invalid_limit")
        let badName = apiError { try QueryParameters(query: "li%ZZmit=1") }
        #expect(badName?.status == .badRequest)
        #expect(badName?.code == "bad_request")
    }

    @Test func routeTableFindsTheRouteOfAPath() {
        let table = RouteTable((OddsRESTController.routePaths + [LivePage.path, OddsWebSocketController.path]).map {
            (template: $0, methods: [.get, .head])
        })
        for path in ["/v1/events", "/v1/events/", "/v1/events/MATCH_001/markets", "/v1/events/a%3Ab/odds",
                     "/v1/events/x/odds/history", "/", "/openapi.yaml", "/ws/odds"] {
            #expect(table.allowedMethods(for: path) == [.get, .head], "\(path)")
        }
        for path in ["/v1", "/v1/events/x", "/v1/events/x/odds/history/more", "/nothing", "/ws/other", "/v1/events/x/y"] {
            #expect(table.allowedMethods(for: path) == nil, "\(path)")
        }
        #expect(RouteTable.allowHeader([.get, .head]) == "GET, HEAD")
    }

    /// Every public-port path of contracts/openapi.yaml is a route (so it gets 405, not 404).
    @Test func everyDocumentedPublicPathIsInTheRouteTable() throws {
        let document = try String(contentsOf: ServiceTestDatabase.repositoryRoot.appendingPathComponent("contracts/openapi.yaml"),
                                  encoding: .utf8)
        let paths = document.split(separator: "\n").filter { $0.hasPrefix("  /") && $0.hasSuffix(":") }
            .map { String($0.dropFirst(2).dropLast()) }
        #expect(paths.count >= 9)
        let routes = Set(OddsRESTController.routePaths + [LivePage.path])
        for path in paths where !["/healthz", "/readyz", "/metrics"].contains(path) {
            let template = path.replacingOccurrences(of: "{id}", with: ":id")
            #expect(routes.contains(template), "\(path) is documented but not routed")
        }
    }

    @Test(arguments: [
        ("/v1/%65vents?limit=%31", "/v1/events?limit=%31"),  // the query is decoded later, once
        ("/v1/events/a%3Ab/odds?market=1x2", "/v1/events/a%3Ab/odds?market=1x2"),
        ("/ws/%6Fdds?x=%41", "/ws/odds?x=%41"),
        ("/plain", "/plain"),
    ])
    func requestTargetsAreNormalizedBeforeRouting(target: String, normalized: String) {
        #expect(RequestTargetNormalization.normalizedPath(target) == normalized)
    }
}

/// Which requests the event-loop fast path may answer, and its Date header.
@Suite("hot read rules (pure)")
struct HotReadRulesTests {
    func request(_ path: String, method: HTTPMethod = .GET, version: HTTPVersion = .http1_1,
                 connection: String? = nil) -> HTTPRequestHead {
        var headers = HTTPHeaders([("Host", "test")])
        if let connection { headers.add(name: "Connection", value: connection) }
        return HTTPRequestHead(version: version, method: method, uri: path, headers: headers)
    }

    @Test func onlyCurrentOddsGetsOfValidEventsAreTaken() {
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds")) == "MATCH_1")
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds?x=1")) == "MATCH_1")
        #expect(HotReads.eventId(of: request("/v1/events/%4DATCH_1/odds")) == "MATCH_1")
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds", connection: "keep-alive")) == "MATCH_1")
        for path in ["/v1/events/MATCH_1/odds/history?market=1x2", "/v1/events/MATCH_1/markets", "/v1/events//odds",
                     "/v1/events/bad%20id/odds", "/v1/events", "/v2/events/MATCH_1/odds", "/v1/events/MATCH_1/odds/"] {
            #expect(HotReads.eventId(of: request(path)) == nil, "\(path)")
        }
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds", method: .HEAD)) == nil)
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds", version: .http1_0)) == nil, "HTTP/1.0: the router")
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds", version: .http1_0, connection: "keep-alive")) == nil)
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds", connection: "close")) == nil)
        #expect(HotReads.eventId(of: request("/v1/events/MATCH_1/odds", connection: "Keep-Alive, Close")) == nil)
    }

    /// The one-pass reading of plain targets must conclude what the general path (normalize,
    /// split, percent-decode, validate) concludes, for every shape of target.
    @Test func plainTargetsAreReadAsTheGeneralPathReadsThem() {
        let long = String(repeating: "x", count: 64)
        let plain = ["/v1/events/MATCH_1/odds", "/v1/events/br.serie-a:2026:r38:fla-pal/odds", "/v1/events/\(long)/odds",
                     "/v1/events/\(long)x/odds", "/v1/events/../odds", "/v1/events/./odds", "/v1/events//odds",
                     "/v1/events/a/b/odds", "/v1/events/bad id/odds", "/v1/events/é/odds", "/v1/events/MATCH_1/odds/",
                     "/v1/events/MATCH_1/oddsx", "/v1/events/MATCH_1", "/v1/events/odds", "/v1/events/", "/v1/eventsX/odds",
                     "//v1/events/A/odds", "/v2/events/A/odds", "/", "", "/v1/events/A/history", "/v1/events/MATCH_1/odds#f"]
        for target in plain {
            let general = HotReads.generalEventId(target)
            switch HotReads.plainTarget(target) {
            case .currentOdds(let eventId): #expect(eventId == general, "\(target)")
            case .other: #expect(general == nil, "\(target)")
            case .needsNormalizing: Issue.record("\(target) has nothing to normalize")
            }
        }
        #expect(HotReads.plainTarget("/v1/events/MATCH_1/odds") == .currentOdds(eventId: "MATCH_1"))
        for target in ["/v1/events/%4DATCH_1/odds", "/v1/events/MATCH_1/odds?x=1", "/v1/%65vents/A/odds", "/v1/events/A/odds?"] {
            #expect(HotReads.plainTarget(target) == .needsNormalizing, "\(target)")
        }
    }

    @Test func dateHeaderIsIMFFixdate() {
        #expect(HTTPDateCache.imfFixdate(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDateCache.imfFixdate(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateCache.imfFixdate(epochSeconds: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
        #expect(HTTPDateCache.imfFixdate(epochSeconds: 1_796_169_599) == "Tue, 01 Dec 2026 23:59:59 GMT")
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        for seconds in stride(from: 0, to: 4_102_444_800, by: 9_876_543) {
            #expect(HTTPDateCache.imfFixdate(epochSeconds: seconds) == formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))))
        }
    }
}
