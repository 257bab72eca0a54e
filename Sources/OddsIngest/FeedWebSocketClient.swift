import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization
@_spi(WSInternal) import WSCore

/// The WebSocket client of the supplier connection: the WebSocket library's frame handling on a
/// socket whose receive buffer is fixed and large.
///
/// Why not the library's client: it cannot set socket options, and the kernel's default receive
/// buffer stalled the feed after back-pressure. While ingest waits for Kafka it does not read
/// its socket, the supplier's kernel queues megabytes in full-size segments (about 64 KiB on
/// loopback), and the receive window ingest announces afterwards (under 64 KiB with the default
/// 128 KiB buffer, which autotuning never grew) is smaller than one of them. The sender then
/// only sends at its zero-window probes, backed off to seconds by the long stall: ingest read
/// nothing for more than its silence limit while the supplier held 4 MB for it (seen with `ss`
/// in the Kafka-stall test). A fixed buffer of `receiveBufferBytes` keeps the window far above
/// any segment.
///
/// An attempt cancelled before the upgrade answer (a deadline) closes its connection at once;
/// the library kept waiting for the answer, which a frozen supplier gives only once it thaws.
/// No half-closed connections: a server that closes before answering ends the attempt with an
/// error (with the library's half-closure the upgrade waited forever).
enum FeedWebSocketClient {
    /// What a handler gets beside the streams.
    struct Context: WebSocketContext {
        let logger: Logger
    }

    struct Refused: Error, CustomStringConvertible {
        let url: String
        var description: String { "the server at \(url) did not accept the WebSocket upgrade" }
    }

    struct BadURL: Error, CustomStringConvertible {
        let url: String
        var description: String { "not a ws:// or wss:// URL with a host: \(url)" }
    }

    static let receiveBufferBytes = 1 << 20

    private enum Upgrade: Sendable {
        case accepted(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case refused
    }

    /// Connects, upgrades, runs `handler` on the connection and returns the peer's close frame.
    static func connect(
        url: String, maxFrameSize: Int, receiveBufferBytes: Int = receiveBufferBytes, logger: Logger,
        handler: @escaping WebSocketDataHandler<Context>
    ) async throws -> WebSocketCloseFrame? {
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(),
              scheme == "ws" || scheme == "wss", let host = parsed.host, !host.isEmpty else {
            throw BadURL(url: url)
        }
        let secure = scheme == "wss"
        let port = parsed.port ?? (secure ? 443 : 80)
        let target = (parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath)
            + (parsed.percentEncodedQuery.map { "?\($0)" } ?? "")
        let tls = try secure ? NIOSSLContext(configuration: .makeClientConfiguration()) : nil

        var headers = HTTPHeaders()
        headers.add(name: "Host", value: parsed.port.map { "\(host):\($0)" } ?? host)
        let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)

        let opened = Mutex<(any Channel)?>(nil)
        let upgrade = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes))
            .connect(host: host, port: port) { channel -> EventLoopFuture<EventLoopFuture<Upgrade>> in
                opened.withLock { $0 = channel }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: host))
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(maxFrameSize: maxFrameSize) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            .accepted(try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel))
                        }
                    }
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: .init(
                        upgradeRequestHead: request, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused) }))
                    configuration.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: configuration)
                }
            }
        let answer = try await withTaskCancellationHandler {
            try await upgrade.get()
        } onCancel: {
            opened.withLock { $0 }?.close(promise: nil)
        }
        switch answer {
        case .accepted(let channel):
            return try await WebSocketHandler.handle(
                type: .client,
                configuration: .init(extensions: [], autoPing: .disabled, validateUTF8: false, maxFrameSize: maxFrameSize),
                asyncChannel: channel, context: Context(logger: logger), handler: handler)
        case .refused:
            opened.withLock { $0 }?.close(promise: nil)
            throw Refused(url: url)
        }
    }
}

/// Whole messages out of WebSocket data frames, as bytes: the frame's bytes are copied once
/// into the array the frame handler reads (the library's messages made a `String` first, which
/// ingest turned back into bytes). Fragmented messages are joined, up to `maxSize` bytes.
struct FeedMessageAssembler {
    enum Failure: Error, CustomStringConvertible, Equatable {
        case continuationWithoutStart
        case startInsideMessage
        case tooLarge(limit: Int)

        var description: String {
            switch self {
            case .continuationWithoutStart: "a continuation frame with no message started"
            case .startInsideMessage: "a new message started before the previous one ended"
            case .tooLarge(let limit): "a message over \(limit) bytes"
            }
        }
    }

    let maxSize: Int
    private var partial: [UInt8]?

    init(maxSize: Int) { self.maxSize = maxSize }

    /// The message `frame` completes, or nil while it is still in parts.
    mutating func add(_ frame: WebSocketDataFrame) throws(Failure) -> [UInt8]? {
        try add(frame.opcode, frame.data, fin: frame.fin)
    }

    mutating func add(_ opcode: WebSocketDataFrame.Opcode, _ data: ByteBuffer, fin: Bool) throws(Failure) -> [UInt8]? {
        let size = data.readableBytes
        switch opcode {
        case .text, .binary:
            guard partial == nil else { throw .startInsideMessage }
            guard size <= maxSize else { throw .tooLarge(limit: maxSize) }
            let bytes = Array(data.readableBytesView)
            if fin { return bytes }
            partial = bytes
            return nil
        case .continuation:
            // Taken out while it grows, so appending does not copy what is already there.
            guard var bytes = partial.take() else { throw .continuationWithoutStart }
            guard bytes.count + size <= maxSize else { throw .tooLarge(limit: maxSize) }
            bytes.append(contentsOf: data.readableBytesView)
            if fin { return bytes }
            partial = bytes
            return nil
        }
    }
}
