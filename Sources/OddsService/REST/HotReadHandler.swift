import Contracts
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// `GET /v1/events/{id}/odds` for an event the mirror holds, answered on the event loop: the same
/// bytes the router would send (the answer cache's body), without handing the request to a
/// Swift task and back. Anything else — another path, HEAD, an event the mirror cannot vouch
/// for, a request that asks to close — goes to the router unchanged.
struct HotReads: Sendable {
    let mirror: LiveOddsMirror
    let controller: OddsRESTController
    let serverName: String
    private let date = HTTPDateCache()

    init(mirror: LiveOddsMirror, controller: OddsRESTController, serverName: String) {
        self.mirror = mirror
        self.controller = controller
        self.serverName = serverName
    }

    /// The event id of a request this path may answer, or nil (the router answers): a GET of
    /// HTTP/1.1 that keeps the connection open (anything else, the router answers as usual).
    static func eventId(of request: HTTPRequestHead) -> String? {
        guard request.method == .GET, request.version == .http1_1, request.isKeepAlive else { return nil }
        let target = request.uri
        switch plainTarget(target) {
        case .currentOdds(let eventId): return eventId
        case .other: return nil
        case .needsNormalizing: return generalEventId(target)
        }
    }

    /// Any target: normalized, split, its id percent-decoded and validated, as the router does.
    static func generalEventId(_ target: String) -> String? {
        let path = RequestTargetNormalization.normalizedPath(target)
        let pathOnly = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let segments = pathOnly.split(separator: "/", omittingEmptySubsequences: false)
        // "", "v1", "events", id, "odds"
        guard segments.count == 5, segments[0].isEmpty, segments[1] == "v1", segments[2] == "events",
              segments[4] == "odds", !segments[3].isEmpty else { return nil }
        return try? RequestValidation.eventId(String(segments[3]))
    }

    enum PlainTarget: Equatable {
        case currentOdds(eventId: String)
        case other
        /// It has `%` or a query: the general path decides.
        case needsNormalizing
    }

    /// A target with nothing to normalize or decode (no `%`, no query) is read in one pass over
    /// its bytes: exactly `/v1/events/{valid id}/odds` or not a current-odds read at all. This
    /// is what the general path concludes for such a target at a small part of its cost (the
    /// general path was a seventh of the server's CPU on hot reads).
    static func plainTarget(_ target: String) -> PlainTarget {
        let prefix = "/v1/events/".utf8, suffix = "/odds".utf8
        let bytes = target.utf8
        if bytes.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "?") }) { return .needsNormalizing }
        guard bytes.count > prefix.count + suffix.count, bytes.starts(with: prefix),
              bytes.reversed().starts(with: suffix.reversed()) else { return .other }
        let id = bytes.dropFirst(prefix.count).dropLast(suffix.count)
        guard id.count <= OddsUpdateValidator.maxEventIdLength, id.allSatisfy(OddsUpdateValidator.isEventIdByte) else {
            return .other
        }
        return .currentOdds(eventId: String(Substring(id)))
    }

    /// The response head and body, or nil when the router must answer.
    func answer(_ request: HTTPRequestHead) -> (HTTPResponseHead, ByteBuffer)? {
        guard let eventId = Self.eventId(of: request) else { return nil }
        let controller = controller
        // Rendered once per change of the event's markets or of the feed status overlay.
        guard let body = mirror.answerBody(eventId, overlayGeneration: controller.board.generation, render: { markets in
            controller.oddsBody(eventId: eventId, markets: markets)
        }) else { return nil }
        controller.metrics.mirrorRead(hit: true)
        controller.metrics.answeredOnEventLoop()
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: HTTPHeaders([
            ("Content-Type", "application/json"), ("Content-Length", String(body.readableBytes)),
            ("Date", date.now()), ("Server", serverName),
        ]))
        return (head, body)
    }
}

/// In the HTTP/1 pipeline between the keep-alive handler and the conversion to HTTPTypes for
/// the router's channel: a hot read is answered in NIOHTTP1's types, without converting the
/// request and the response (that conversion was a tenth of the server's CPU per hot read). A
/// request is answered here only when no earlier request of the connection is still with the
/// router, so responses keep the order of the requests.
final class HotReadHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let hotReads: HotReads
    /// Requests handed to the router whose response has not ended yet.
    private var withRouter = 0
    /// The answer of the request being read, sent once its end arrives.
    private var answering: (head: HTTPResponseHead, body: ByteBuffer, started: ContinuousClock.Instant)?

    init(hotReads: HotReads) {
        self.hotReads = hotReads
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            let started = ContinuousClock.now
            if withRouter == 0, let (head, body) = hotReads.answer(request) {
                answering = (head, body, started)
                return
            }
            withRouter += 1
            context.fireChannelRead(data)
        case .body:
            if answering == nil { context.fireChannelRead(data) }  // a GET body answered here is ignored
        case .end:
            guard let answer = answering else {
                context.fireChannelRead(data)
                return
            }
            answering = nil
            context.write(wrapOutboundOut(.head(answer.head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            hotReads.controller.metrics.restTimer(route: OddsRESTController.oddsRoute)
                .record(duration: ContinuousClock.now - answer.started)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { withRouter = max(0, withRouter - 1) }
        context.write(data, promise: promise)
    }
}

/// The `Date` header value (RFC 9110 IMF-fixdate), formatted once per second.
final class HTTPDateCache: Sendable {
    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = Int(spec.tv_sec)
        if let text = cached.withLock({ $0.second == second ? $0.text : nil }) { return text }
        let text = Self.imfFixdate(epochSeconds: second)
        cached.withLock { $0 = (second, text) }
        return text
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` for 784111777.
    static func imfFixdate(epochSeconds: Int) -> String {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secondOfDay = epochSeconds - days * 86_400
        let (year, month, day) = Timestamp.civilFromDays(days)
        let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][((days % 7) + 7) % 7]
        let monthName = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][month - 1]
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekday), \(two(day)) \(monthName) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) GMT"
    }
}
