import Foundation
import NIOCore
import NIOPosix

/// A deliberately small WebSocket client for load generation: the HTTP upgrade and the frame
/// parsing run inside one NIO handler on the event loop, with no Swift task per connection and
/// no async hop per frame, so 10,000 clients on a 2-core machine cost little CPU next to the
/// server being measured. It reads server frames (unmasked), answers pings, and sends its
/// one subscribe frame masked (RFC 6455). Correctness clients use HummingbirdWSClient.
final class RawWebSocketBenchHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let host: String
    let port: Int
    let path: String
    let subscribeFrames: [String]
    let shard: Int
    let stats: BenchStats
    /// Set in `--role follow`: checks order and measures updated_at → receipt instead.
    let follower: FollowerConnection?
    private var buffer = ByteBuffer()
    private var upgraded = false
    private var sawSnapshot = false

    init(host: String, port: Int, path: String, subscribeFrames: [String], shard: Int, stats: BenchStats,
         follower: FollowerConnection? = nil) {
        self.host = host
        self.port = port
        self.path = path
        self.subscribeFrames = subscribeFrames
        self.shard = shard
        self.stats = stats
        self.follower = follower
    }

    func channelActive(context: ChannelHandlerContext) {
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        if !upgraded {
            guard let end = buffer.readableBytesView.firstRange(of: [13, 10, 13, 10]) else { return }
            let headLength = end.upperBound - buffer.readerIndex
            let head = buffer.readString(length: headLength) ?? ""
            guard head.hasPrefix("HTTP/1.1 101") else {
                stats.failed.add(1, ordering: .relaxed)
                context.close(promise: nil)
                return
            }
            upgraded = true
            stats.connected.add(1, ordering: .relaxed)
            for frame in subscribeFrames { send(context: context, opcode: 0x1, payload: Array(frame.utf8)) }
        }
        parseFrames(context: context)
        buffer.discardReadBytes()
    }

    private func parseFrames(context: ChannelHandlerContext) {
        while buffer.readableBytes >= 2 {
            let start = buffer.readerIndex
            guard let first = buffer.getInteger(at: start, as: UInt8.self),
                  let second = buffer.getInteger(at: start + 1, as: UInt8.self) else { return }
            var length = Int(second & 0x7F)
            var header = 2
            if length == 126 {
                guard let value = buffer.getInteger(at: start + 2, as: UInt16.self) else { return }
                length = Int(value)
                header = 4
            } else if length == 127 {
                guard let value = buffer.getInteger(at: start + 2, as: UInt64.self) else { return }
                length = Int(value)
                header = 10
            }
            guard buffer.readableBytes >= header + length else { return }
            buffer.moveReaderIndex(forwardBy: header)
            let payload = buffer.readSlice(length: length) ?? ByteBuffer()
            switch first & 0x0F {
            case 0x1:
                handleText(payload)
            case 0x9:
                send(context: context, opcode: 0xA, payload: Array(payload.readableBytesView))
            case 0x8:
                if !stats.stopping.load(ordering: .relaxed) { stats.closed.add(1, ordering: .relaxed) }
                context.close(promise: nil)
                return
            default:
                break
            }
        }
    }

    private func handleText(_ payload: ByteBuffer) {
        if let follower {
            follower.handle(payload, shard: shard, stats: stats)
            return
        }
        if !sawSnapshot, WSBenchCommand.contains(payload, WSBenchCommand.snapshotMarker) {
            sawSnapshot = true
            stats.subscribed.add(1, ordering: .relaxed)
            return
        }
        if let sent = WSBenchCommand.benchMicros(payload) {
            stats.record(shard: shard, latencyMicros: max(0, WSBenchCommand.nowMicros() - sent))
        }
    }

    /// A client frame: FIN + opcode, mask bit with a zero masking key (payload unchanged).
    private func send(context: ChannelHandlerContext, opcode: UInt8, payload: [UInt8]) {
        var frame = context.channel.allocator.buffer(capacity: payload.count + 8)
        frame.writeInteger(0x80 | opcode)
        if payload.count < 126 {
            frame.writeInteger(UInt8(0x80 | payload.count))
        } else {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.count))
        }
        frame.writeInteger(UInt32(0))
        frame.writeBytes(payload)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

enum RawWebSocketBench {
    /// Connects one raw client; returns when the TCP connection is up (the upgrade follows).
    static func connect(url: String, eventIds: [String], shard: Int, group: any EventLoopGroup, stats: BenchStats,
                        follower: FollowerConnection? = nil) async throws {
        guard let components = URLComponents(string: url), let host = components.host else { throw ChannelError.badInterfaceAddressFamily }
        let port = components.port ?? 80
        let path = components.path.isEmpty ? "/" : components.path
        let subscribe = eventIds.map { #"{"type":"subscribe","eventId":"\#($0)"}"# }
        _ = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawWebSocketBenchHandler(
                        host: host, port: port, path: path, subscribeFrames: subscribe, shard: shard, stats: stats,
                        follower: follower))
                }
            }
            .connect(host: host, port: port)
            .get()
    }
}
