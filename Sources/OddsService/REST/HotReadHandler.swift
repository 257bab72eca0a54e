import Contracts
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes
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

    /// The event id of a request this path may answer, or nil (the router answers).
    static func eventId(of request: HTTPRequest) -> String? {
        guard request.method == .get, let target = request.path,
              request.headerFields[.connection]?.lowercased().contains("close") != true else { return nil }
        let path = RequestTargetNormalization.normalizedPath(target)
        let pathOnly = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let segments = pathOnly.split(separator: "/", omittingEmptySubsequences: false)
        // "", "v1", "events", id, "odds"
        guard segments.count == 5, segments[0].isEmpty, segments[1] == "v1", segments[2] == "events",
              segments[4] == "odds", !segments[3].isEmpty else { return nil }
        return try? RequestValidation.eventId(String(segments[3]))
    }

    /// The response head and body, or nil when the router must answer.
    func answer(_ request: HTTPRequest) -> (HTTPResponse, ByteBuffer)? {
        guard let eventId = Self.eventId(of: request), let markets = mirror.current(eventId),
              let body = controller.oddsBody(eventId: eventId, markets: markets) else { return nil }
        controller.metrics.mirrorRead(hit: true)
        controller.metrics.answeredOnEventLoop()
        let head = HTTPResponse(status: .ok, headerFields: [
            .contentType: "application/json", .contentLength: String(body.readableBytes),
            .date: date.now(), .server: serverName,
        ])
        return (head, body)
    }
}

/// In the HTTP pipeline between the keep-alive handler and the router's channel. A request is
/// answered here only when no earlier request of the connection is still with the router, so
/// responses keep the order of the requests.
final class HotReadHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let hotReads: HotReads
    /// Requests handed to the router whose response has not ended yet.
    private var withRouter = 0
    /// The answer of the request being read, sent once its end arrives.
    private var answering: (head: HTTPResponse, body: ByteBuffer, started: ContinuousClock.Instant)?

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
            context.write(wrapOutboundOut(.body(answer.body)), promise: nil)
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
