import Contracts
import Foundation
import Hummingbird
import HummingbirdCore
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// The public port's connections: HTTP/1.1 answered by the Hummingbird router, and the
/// `/ws/odds` upgrade handed to `OddsWebSocketHandler`, a plain NIO handler. Hummingbird's own
/// WebSocket channel keeps a chain of Swift tasks parked per connection (≈30 KiB each); here
/// an upgraded connection's task ends right after the upgrade.
struct OddsServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum Negotiated: Sendable {
        case webSocket
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// An upgrade request that was refused. NIO's upgrade handler has consumed its head, so
        /// the router never sees it: the refusal is answered here.
        case refusedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, path: String)
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let webSocket: OddsWebSocketController
    /// Current-odds reads answered on the event loop (nil: every request goes to the router).
    let hotReads: HotReads?
    /// Keep-alive HTTP connections idle this long are closed.
    let idleTimeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // Start reads small (NIO's default keeps a 2 KiB buffer per connection); it grows
            // with the traffic.
            try channel.syncOptions?.setOption(ChannelOptions.recvAllocator,
                                               value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536))
            let webSocket = webSocket
            let refusedPath = NIOLoopBoundBox<String?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<Negotiated>(
                maxFrameSize: webSocket.limits.hardFrameBytes,
                shouldUpgrade: { channel, head in
                    // Normalized as for HTTP routes: `/ws/%6Fdds` is `/ws/odds`.
                    let target = RequestTargetNormalization.normalizedPath(head.uri)
                    let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
                    let accepted = webSocket.shouldUpgrade(path: path)
                    if !accepted { refusedPath.value = path }
                    return channel.eventLoop.makeSucceededFuture(accepted ? HTTPHeaders() : nil)
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        // Small socket write buffer: a client that stops reading holds at most
                        // ~32 KiB in NIO (plus the kernel buffer); the rest waits in the bounded,
                        // conflating queue.
                        try channel.syncOptions?.setOption(ChannelOptions.writeBufferWaterMark,
                                                           value: .init(low: 8 * 1024, high: 32 * 1024))
                        try channel.pipeline.syncOperations.addHandler(OddsWebSocketHandler(controller: webSocket))
                        return .webSocket
                    }
                })
            let idleTimeout = idleTimeout
            let hotReads = hotReads
            let http = NIOTypedHTTPServerUpgradeConfiguration<Negotiated>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Keep-alive and hot reads work on NIOHTTP1's parts; the router gets HTTPTypes.
                        try channel.pipeline.syncOperations.addHandler(HTTPKeepAliveHandler(idleTimeout: idleTimeout))
                        if let hotReads { try channel.pipeline.syncOperations.addHandler(HotReadHandler(hotReads: hotReads)) }
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        if let path = refusedPath.value { return .refusedUpgrade(asyncChannel, path: path) }
                        return .http(asyncChannel)
                    }
                })
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: http)
            configuration.enablePipelining = false  // NIOAsyncChannel answers requests in order
            configuration.enableErrorHandling = false  // Hummingbird answers parse errors
            configuration.enableResponseHeaderValidation = false  // HTTPTypes already validates
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(negotiated: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .webSocket:
                return  // the NIO handler owns the connection from here
            case .http(let channel):
                await handleHTTP(asyncChannel: channel, logger: logger)
            case .refusedUpgrade(let channel, let path):
                let refusal = webSocket.refusal(path: path)
                let json = (try? ContractCoding.encoder.encode(APIErrorResponse(code: refusal.code, message: refusal.message))) ?? Data()
                try await channel.executeThenClose { _, outbound in
                    let body = ByteBuffer(bytes: json)
                    try await outbound.write(.head(HTTPResponse(status: refusal.status, headerFields: [
                        .contentType: "application/json; charset=utf-8", .contentLength: "\(body.readableBytes)",
                        .connection: "close",
                    ])))
                    try await outbound.write(.body(body))
                    try await outbound.write(.end(nil))
                }
            }
        } catch {
            logger.debug("connection ended before a request", metadata: ["error": "\(error)"])
            value.channel.close(promise: nil)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 plus the odds WebSocket (see `OddsServerChannel`).
    static func oddsService(webSocket: OddsWebSocketController, hotReads: HotReads?, idleTimeout: TimeAmount) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            // Request targets are normalized before routing (see `RequestTargetNormalization`).
            OddsServerChannel(responder: RequestTargetNormalization.wrap(responder), webSocket: webSocket, hotReads: hotReads,
                              idleTimeout: idleTimeout)
        }
    }
}

/// Keep-alive housekeeping of a plain HTTP connection: closes it after `idleTimeout` without a
/// request, and when the server shuts down (at once if idle, else after the current response).
/// One timer per idle period, not one per request: it re-arms itself for the time that is left.
final class HTTPKeepAliveHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let idleTimeout: TimeAmount
    private var requestsInProgress = 0
    private var closeWhenIdle = false
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armIdleTimer(context, in: idleTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if idleTimer == nil { armIdleTimer(context, in: idleTimeout) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { requestsInProgress += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        requestsInProgress = max(0, requestsInProgress - 1)
        lastActivity = .now()
        guard requestsInProgress == 0, closeWhenIdle else {
            context.write(data, promise: promise)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { result in
            promise?.completeWith(result)
            loopBound.value.close(promise: nil)
        }
        context.write(data, promise: written)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            if requestsInProgress == 0 { context.close(promise: nil) } else { closeWhenIdle = true }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func armIdleTimer(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            let idleFor = NIODeadline.now() - handler.lastActivity
            if handler.requestsInProgress == 0 && idleFor >= handler.idleTimeout {
                context.close(promise: nil)
            } else {
                handler.armIdleTimer(context, in: max(.milliseconds(10), handler.idleTimeout - idleFor))
            }
        }
    }
}
