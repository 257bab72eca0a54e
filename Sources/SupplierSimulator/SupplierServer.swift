import Contracts
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// Request context that keeps the connection's channel, so a slow client can be disconnected
/// even while its writer is blocked on a full socket.
struct SupplierRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<SupplierRequestContext>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        webSocket = WebSocketHandlerReference()
        channel = source.channel
    }
}

/// The supplier's public server: the `/ws` feed and the `POST /supplier/confirm` mock.
enum SupplierServer {
    /// How long a closing connection waits for the client's close reply.
    static let closeReplyTimeout: Duration = .seconds(5)

    static func router(hub: FeedHub, desk: ConfirmationDesk, metrics: SupplierMetrics) -> Router<SupplierRequestContext> {
        let router = Router(context: SupplierRequestContext.self)
        router.ws("/ws", shouldUpgrade: { request, _ in
            // Refused before the upgrade: a client with a bad resume position gets a 400 it can
            // read, not a connection that closes without a word.
            _ = try feedStart(of: request)
            return .upgrade([:])
        }) { inbound, outbound, context in
            let channel = context.requestContext.channel
            let start = (try? feedStart(of: context.request)) ?? .snapshot
            let subscriber = hub.connect(
                remoteAddress: channel.remoteAddress?.description ?? "unknown", start: start,
                abortConnection: { channel.close(promise: nil) },
                writeNow: { frames in
                    guard channel.isWritable else { return false }
                    _ = send(frames, to: channel, metrics: metrics)
                    return true
                })
            defer { hub.disconnect(subscriber) }
            await serve(subscriber, inbound: inbound, outbound: outbound, channel: channel, metrics: metrics)
        }
        router.post("/supplier/confirm") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let parsed: ConfirmationRequest
            do {
                parsed = try ConfirmationRequest.parse(Array(buffer: body))
            } catch {
                return json(.badRequest, ["error": ["code": "bad_request", "message": "\(error)"]])
            }
            var answer: [String: Any] = [:]
            if let betId = parsed.betId { answer["bet_id"] = betId }
            switch desk.decide() {
            case .confirmed(let confirmationId):
                metrics.confirmations["confirmed"]?.increment()
                answer["status"] = "confirmed"
                answer["confirmation_id"] = confirmationId
            case .rejected(let reason):
                metrics.confirmations["rejected"]?.increment()
                answer["status"] = "rejected"
                answer["reason"] = reason
            }
            return json(.ok, answer)
        }
        return router
    }

    /// Writes the subscriber's frames until it is stopped or drained; a second task reads the
    /// client's side only to notice when it closes.
    ///
    /// A batch (the frames of one tick) goes to the event loop in one hop and one flush, written
    /// as text frames straight into the channel below the library's writer: through the writer
    /// each frame was its own hop and its own flush, a `writev` (the flushes alone were 17 % of
    /// the supplier's CPU at 10,000 frames/s). While the writer waits with nothing queued, the
    /// feed loop hands a batch to the channel itself (`FeedSubscriber.writeNow`), sparing the
    /// writer task's wake-up. The writer still sends the close frame, after every batch (same
    /// event loop, in order).
    /// Back-pressure: while the socket is not writable, batches queue for the writer, which
    /// waits for its last batch to reach the kernel; the subscriber's buffer is bounded by the hub.
    static func serve(_ subscriber: FeedSubscriber, inbound: WebSocketInboundStream,
                      outbound: WebSocketOutboundWriter, channel: any Channel, metrics: SupplierMetrics) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await _ in inbound {}
                } catch {}
                // The client closed (or the connection dropped): nothing more can be written.
                subscriber.stop()
            }
            writing: while true {
                switch await subscriber.nextStep() {
                case .write(let frames):
                    let written = send(frames, to: channel, metrics: metrics)
                    if !channel.isWritable {
                        do {
                            try await written.get()
                        } catch {
                            break writing
                        }
                    }
                case .close(let reason):
                    // Everything buffered is written; the close frame follows it on the wire.
                    try? await outbound.close(.goingAway, reason: reason)
                    group.addTask { try? await Task.sleep(for: closeReplyTimeout) }
                    _ = await group.next()  // the client's close reply, or the timeout
                    break writing
                case .stop:
                    break writing
                }
            }
            group.cancelAll()
        }
    }

    /// Writes `frames` as text frames with one flush and counts them sent; the future completes
    /// when the last one has been written to the socket (or fails with the channel).
    static func send(_ frames: [QueuedFrame], to channel: any Channel, metrics: SupplierMetrics) -> EventLoopFuture<Void> {
        metrics.recordSent(frames)
        let eventLoop = channel.eventLoop
        let done = eventLoop.makePromise(of: Void.self)
        eventLoop.execute {
            for (offset, frame) in frames.enumerated() {
                let data = channel.allocator.buffer(string: frame.text)
                channel.write(WebSocketFrame(fin: true, opcode: .text, data: data), promise: offset == frames.count - 1 ? done : nil)
            }
            channel.flush()
            if frames.isEmpty { done.succeed() }
        }
        return done.futureResult
    }

    /// What a connecting client asks for (`after=E:N`, `start=snapshot|live`; snapshot by default).
    static func feedStart(of request: Request) throws(FeedRequestRefusal) -> FeedStart {
        let query = request.uri.queryParameters
        do {
            return try FeedStart.parse(after: query[Substring(FeedProtocol.afterParameter)].map(String.init),
                                       start: query[Substring(FeedProtocol.startParameter)].map(String.init))
        } catch {
            throw FeedRequestRefusal(message: error.description)
        }
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// A feed connect request the supplier cannot serve: answered with 400 and a JSON error.
struct FeedRequestRefusal: HTTPResponseError {
    let message: String
    var status: HTTPResponse.Status { .badRequest }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        SupplierServer.json(status, ["error": ["code": "bad_feed_request", "message": message]])
    }
}
