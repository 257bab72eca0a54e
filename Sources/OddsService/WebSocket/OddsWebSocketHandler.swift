import Contracts
import Logging
import NIOCore
import NIOWebSocket

/// One `/ws/odds` connection after the upgrade, as a NIO handler on the channel's event loop:
/// client frames (reassembly, limits, ping/pong, close handshake) in, control and error frames
/// out through `WSConnection`. Only a subscribe's snapshot read runs in a short-lived task, so
/// an idle connection holds no Swift task (at 10,000 connections a parked task chain per
/// connection was three quarters of the server's memory).
///
/// Messages of one connection are applied in order: while a snapshot is being read, later
/// messages wait in a small backlog (a client that fills it gets an error frame per message).
final class OddsWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let controller: OddsWebSocketController
    private var connection: WSConnection?
    private var bucket: TokenBucket
    private var violations = 0
    /// A fragmented message being reassembled (opcode of its first frame, bytes so far).
    private var fragments: (opcode: WebSocketOpcode, data: ByteBuffer)?
    private var snapshotInFlight = false
    private var backlog: [Result<ClientMessage, ClientMessageError>] = []
    private static let maxBacklog = 32

    init(controller: OddsWebSocketController) {
        self.controller = controller
        bucket = TokenBucket(ratePerSecond: controller.limits.maxMessagesPerSecond)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let connection = controller.hub.open(channel: context.channel) else {
            let reason = ServerCloseReason.tooManyConnections
            controller.metrics.serverClose(reason.metricName)
            WSConnection.closeChannel(context.channel, reason: reason)
            return
        }
        self.connection = connection
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection?.writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection {
            connection.close(nil)
            controller.hub.remove(connection)
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server is shutting down (Hummingbird quiesces its child channels).
        if event is ChannelShouldQuiesceEvent {
            if let connection { connection.close(.shutdown) } else { context.close(promise: nil) }
            return
        }
        // The server allows half-closure, so a client's EOF arrives as an event: a WebSocket
        // peer that stopped sending is gone.
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let connection else { return }
        connection.heard()
        switch frame.opcode {
        case .ping:
            guard frame.fin else { return protocolError(connection, "fragmented ping") }
            connection.writeControl(opcode: .pong, data: frame.unmaskedData)
        case .pong:
            break
        case .connectionClose:
            connection.clientClosed(frame.unmaskedData)
        case .text, .binary:
            guard fragments == nil else { return protocolError(connection, "new message before the previous one ended") }
            if frame.fin {
                message(frame.opcode, frame.unmaskedData, connection: connection, context: context)
            } else {
                fragments = (frame.opcode, frame.unmaskedData)
            }
        case .continuation:
            guard var partial = fragments else { return protocolError(connection, "continuation without a message") }
            var more = frame.unmaskedData
            guard partial.data.readableBytes + more.readableBytes <= controller.limits.hardFrameBytes else {
                fragments = nil
                connection.close(.messageTooBig(controller.limits.hardFrameBytes))
                return
            }
            partial.data.writeBuffer(&more)
            if frame.fin {
                fragments = nil
                message(partial.opcode, partial.data, connection: connection, context: context)
            } else {
                fragments = partial
            }
        default:
            protocolError(connection, "unknown opcode")
        }
    }

    private func protocolError(_ connection: WSConnection, _ detail: String) {
        connection.close(.protocolError(detail))
    }

    /// A complete client message: rate limit, type and size checks, then parse and apply.
    private func message(_ opcode: WebSocketOpcode, _ data: ByteBuffer, connection: WSConnection, context: ChannelHandlerContext) {
        let limits = controller.limits
        guard bucket.take() else {
            violations += 1
            if violations >= limits.abusiveViolations {
                controller.metrics.inboundRejected("rate_limited")
                connection.close(.policyViolation("inbound message rate limit exceeded"))
                return
            }
            controller.reject(connection, code: "rate_limited",
                              message: "at most \(limits.maxMessagesPerSecond) messages per second; message ignored")
            return
        }
        violations = 0
        guard opcode == .text else {
            controller.reject(connection, code: "bad_frame", message: "binary frames are not supported; send JSON text frames")
            return
        }
        guard data.readableBytes <= limits.maxFrameBytes else {
            controller.reject(connection, code: "frame_too_large",
                              message: "frame is \(data.readableBytes) bytes, the limit is \(limits.maxFrameBytes)")
            return
        }
        let parsed = ClientMessage.parse(data.readableBytesView)
        if snapshotInFlight {
            guard backlog.count < Self.maxBacklog else {
                controller.reject(connection, code: "busy", message: "too many messages while a snapshot is loading; message ignored")
                return
            }
            backlog.append(parsed)
            return
        }
        apply(parsed, connection: connection, context: context)
    }

    /// Applies messages until one needs a snapshot read; that read runs in a task and the
    /// backlog resumes on the event loop when it is done.
    private func apply(_ parsed: Result<ClientMessage, ClientMessageError>, connection: WSConnection, context: ChannelHandlerContext) {
        var next: Result<ClientMessage, ClientMessageError>? = parsed
        while let message = next {
            let started = controller.apply(message, on: connection)
            if !started.isEmpty {
                snapshotInFlight = true
                let controller = controller
                let loopBound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
                let eventLoop = context.eventLoop
                Task {
                    await controller.sendSnapshots(of: started, to: connection)
                    eventLoop.execute {
                        let (handler, context) = loopBound.value
                        handler.snapshotInFlight = false
                        guard !handler.backlog.isEmpty else { return }
                        let first = handler.backlog.removeFirst()
                        handler.apply(first, connection: connection, context: context)
                    }
                }
                return
            }
            next = backlog.isEmpty ? nil : backlog.removeFirst()
        }
    }
}
