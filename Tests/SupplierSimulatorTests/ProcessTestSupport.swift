import Contracts
import Foundation
import HummingbirdWSClient
import IntegrationSupport
import Logging
import ServiceSupport
import SocketSupport
import Synchronization
import Testing

/// Starting the real `supplier-simulator` binary and talking to it over real sockets.
enum SupplierProcess {
    struct Ports {
        let http: Int
        let metrics: Int
        var feedURL: String { "ws://127.0.0.1:\(http)/ws" }
        var metricsURL: String { "http://127.0.0.1:\(metrics)" }
    }

    static func ports() throws -> Ports {
        Ports(http: try TestInfrastructure.freePort(), metrics: try TestInfrastructure.freePort())
    }

    static func start(_ ports: Ports, environment: [String: String] = [:]) async throws -> ManagedProcess {
        var env = ["HTTP_HOST": "127.0.0.1", "HTTP_PORT": "\(ports.http)", "METRICS_PORT": "\(ports.metrics)",
                   "LOG_FORMAT": "text", "LOG_LEVEL": "info"]
        env.merge(environment) { $1 }
        return try await ManagedProcess.launch("supplier-simulator", environment: env, metricsPort: ports.metrics, waitFor: "/readyz")
    }
}

/// A WebSocket client of the odds-feed/2 feed that records every text frame it reads (raw, and
/// parsed with `FeedFrame.parse`), per connection, until the server closes or it chooses to stop.
final class RecordingClient: Sendable {
    /// Where a connection is, for the stop condition of `readUntilClosed`.
    struct Progress: Sendable {
        var hello: FeedHello?
        /// `odds` frames read on this connection.
        var oddsCount = 0
        /// Position of the last `odds` frame read.
        var lastOdds: FeedPosition?
        var snapshotComplete = false
    }

    /// One connection's frames.
    struct Connection: Sendable {
        /// What the client asked for (nil: no query parameter at all).
        let start: FeedStart?
        var raw: [String] = []
        /// The parsed frames, in order (unreadable ones left out, see `unreadable`).
        var frames: [FeedFrame] = []
        var unreadable: [String] = []
        var progress = Progress()

        var hello: FeedHello? { progress.hello }
        /// The `odds` frames' positions and payloads, in order.
        var odds: [(position: FeedPosition, payload: String)] {
            frames.compactMap { frame in
                guard case .odds(let position, let payload) = frame else { return nil }
                return (position, String(decoding: payload, as: UTF8.self))
            }
        }
    }

    private let state = Mutex<[Connection]>([])
    private let phaseText = Mutex("idle")
    /// Where the client is (for failure messages): connecting, reading, closed, waiting.
    var phase: String { phaseText.withLock { $0 } }

    var connections: [Connection] { state.withLock { $0 } }
    var connectionCount: Int { state.withLock { $0.count } }
    /// Every text frame read, over all connections, as sent.
    var raw: [String] { state.withLock { $0.flatMap(\.raw) } }
    /// The payloads (OddsUpdate texts) of every `odds` frame read, over all connections.
    var received: [String] { state.withLock { $0.flatMap { $0.odds.map(\.payload) } } }
    /// `odds` frames read so far, over all connections (cheap: for polling).
    var oddsCount: Int { state.withLock { $0.reduce(0) { $0 + $1.progress.oddsCount } } }
    /// Where a reconnect resumes: the last stream position this client has everything up to.
    var resumePosition: FeedPosition? {
        state.withLock { connections in
            for connection in connections.reversed() {
                if let last = connection.progress.lastOdds { return last }
                if connection.progress.snapshotComplete || connection.hello?.recovery == .live { return connection.hello?.position }
                if let hello = connection.hello, hello.recovery == .replay { return hello.after }
            }
            return nil
        }
    }

    /// `base` (`ws://host:port/ws`) asking for `start`; nil asks with no parameter at all.
    static func url(_ base: String, _ start: FeedStart?) -> String {
        start.map { "\(base)?\($0.query)" } ?? base
    }

    /// Reads one connection until the server closes it, or until `stop` says so after a frame
    /// (the client then closes the connection).
    func readUntilClosed(url base: String, start: FeedStart? = .live,
                         stop: @escaping @Sendable (Progress) -> Bool = { _ in false }) async throws {
        let index = state.withLock { connections in
            connections.append(Connection(start: start))
            return connections.count - 1
        }
        var logger = Logger(label: "test.ws")
        logger.logLevel = .warning
        // The handshake is bounded (a server shutting down may close the connection before it
        // answers the upgrade, and the client library would wait forever); the reading is not.
        phaseText.withLock { $0 = "connecting" }
        defer { phaseText.withLock { $0 = "closed" } }
        let url = Self.url(base, start)
        _ = try await Deadline.untilStarted("the supplier's WebSocket handshake (\(url))", timeout: .seconds(15)) { [logger] handshakeDone in
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 16), logger: logger) { inbound, _, _ in
                handshakeDone()
                self.phaseText.withLock { $0 = "reading" }
                defer { self.phaseText.withLock { $0 = "handler returned" } }
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    guard case .text(let text) = message else { continue }
                    let progress = self.record(text, connection: index)
                    if stop(progress) { return }
                }
            }
        }
    }

    private func record(_ text: String, connection index: Int) -> Progress {
        let parsed = try? FeedFrame.parse(Array(text.utf8))
        return state.withLock { connections in
            connections[index].raw.append(text)
            guard let parsed else {
                connections[index].unreadable.append(text)
                return connections[index].progress
            }
            connections[index].frames.append(parsed)
            switch parsed {
            case .hello(let hello):
                if connections[index].progress.hello == nil { connections[index].progress.hello = hello }
            case .odds(let position, _):
                connections[index].progress.oddsCount += 1
                connections[index].progress.lastOdds = position
            case .snapshotComplete:
                connections[index].progress.snapshotComplete = true
            case .snapshotStart, .snapshot, .alive:
                break
            }
            return connections[index].progress
        }
    }

    /// Reconnects after every close until `stop` says so; with `resuming`, every reconnect asks
    /// to resume after the last position read (as ingest does).
    func readReconnecting(url: String, start: FeedStart = .live, resuming: Bool = false, pause: Duration = .milliseconds(50),
                          until stop: @Sendable () -> Bool) async {
        while !stop() && !Task.isCancelled {
            let next = resuming ? resumePosition.map(FeedStart.after) ?? start : start
            try? await readUntilClosed(url: url, start: next)
            try? await Task.sleep(for: pause)
        }
    }
}

/// Checks one connection against odds-feed/2: every frame readable, a hello first (answering
/// what was asked), then the replay or snapshot it announced, then `odds` frames with
/// consecutive seqs of the hello's epoch. Returns the seq the first `odds` frame had to have.
@discardableResult
func expectWellFormed(_ connection: RecordingClient.Connection, sourceLocation: SourceLocation = #_sourceLocation) -> UInt64? {
    #expect(connection.unreadable.isEmpty, "unreadable frames: \(connection.unreadable.prefix(3))", sourceLocation: sourceLocation)
    guard case .hello(let hello)? = connection.frames.first else {
        Issue.record("the first frame is not a hello: \(connection.raw.first ?? "no frame at all")", sourceLocation: sourceLocation)
        return nil
    }
    #expect(connection.frames.dropFirst().allSatisfy { if case .hello = $0 { false } else { true } }, "one hello only",
            sourceLocation: sourceLocation)
    switch connection.start {
    case .live?: #expect(hello.recovery == .live, "asked live, got \(hello)", sourceLocation: sourceLocation)
    case .snapshot?, nil: #expect(hello.recovery == .snapshot && hello.reason == .requested, "asked a snapshot, got \(hello)",
                                  sourceLocation: sourceLocation)
    case .after(let asked)?: #expect(hello.after == asked && hello.recovery != .live, "asked after \(asked), got \(hello)",
                                     sourceLocation: sourceLocation)
    }
    var rest = connection.frames.dropFirst()
    let firstSeq: UInt64
    switch hello.recovery {
    case .live:
        firstSeq = hello.position.seq + 1
    case .replay:
        firstSeq = (hello.after?.seq ?? hello.position.seq) + 1
    case .snapshot:
        firstSeq = hello.position.seq + 1
        guard case .snapshotStart(let position, let markets)? = rest.first, position == hello.position else {
            if !rest.isEmpty { Issue.record("no snapshot_start after a snapshot hello: \(rest.first!)", sourceLocation: sourceLocation) }
            return firstSeq
        }
        rest = rest.dropFirst()
        let snapshot = rest.prefix(markets)
        #expect(snapshot.count == markets || rest.count < markets, sourceLocation: sourceLocation)
        for (offset, frame) in snapshot.enumerated() {
            guard case .snapshot(let at, let index, let count, _) = frame, at == position, index == offset + 1, count == markets else {
                Issue.record("snapshot frame \(offset + 1) of \(markets) expected, got \(frame)", sourceLocation: sourceLocation)
                return firstSeq
            }
        }
        rest = rest.dropFirst(snapshot.count)
        guard let complete = rest.first else { return firstSeq }
        #expect(complete == .snapshotComplete(position: position, markets: markets), sourceLocation: sourceLocation)
        rest = rest.dropFirst()
    }
    var expected = firstSeq
    for frame in rest {
        if case .alive(let position) = frame {
            // A quiet feed: alive says where the stream is, and nothing may be missing.
            #expect(position == FeedPosition(epoch: hello.position.epoch, seq: expected - 1),
                    "alive at \(position) while the next odds frame is \(expected)", sourceLocation: sourceLocation)
            continue
        }
        guard case .odds(let position, _) = frame else {
            Issue.record("after the opening frames, only odds and alive frames: got \(frame)", sourceLocation: sourceLocation)
            return firstSeq
        }
        guard position == FeedPosition(epoch: hello.position.epoch, seq: expected) else {
            Issue.record("expected odds frame \(hello.position.epoch):\(expected), got \(position)", sourceLocation: sourceLocation)
            return firstSeq
        }
        expected += 1
    }
    return firstSeq
}

/// A WebSocket client that completes the upgrade and then never reads, with a tiny receive
/// buffer: the supplier's view of a client that stopped keeping up.
final class StalledWebSocketClient: Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        // A small receive buffer so the peer's writes block soon.
        guard let fd = BlockingSocket.connect(port: port, configure: {
            BlockingSocket.setOption($0, level: SOL_SOCKET, name: SO_RCVBUF, value: 4096)
        }) else { throw POSIXError(.ECONNREFUSED) }
        let request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        descriptor = fd
    }

    /// Reads everything the server sends until it closes the connection, at most `timeout`
    /// (on its own thread: the socket blocks).
    func readUntilClosed(timeout: Duration) async throws -> [UInt8] {
        let fd = descriptor
        let seconds = Double(timeout.components.seconds)
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                let deadline = Date(timeIntervalSinceNow: seconds)
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                var wait = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
                while deadline.timeIntervalSinceNow > 0 {
                    let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 { bytes += buffer[..<n]; continue }
                    if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        continuation.resume(returning: bytes)
                        return
                    }
                }
                continuation.resume(throwing: TestFailure("the supplier did not close the connection within \(timeout) (\(bytes.count) bytes read)"))
            }.start()
        }
    }

    func close() {
        Glibc.close(descriptor)
    }
}

/// Compares two frame sequences and, when they differ, reports the counts and the first
/// difference instead of dumping megabytes of frames.
func expectSameFrames(_ actual: [String], _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual != expected else { return }
    let firstDifference = zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        ?? min(actual.count, expected.count)
    Issue.record("""
        frames differ: \(actual.count) received, \(expected.count) expected; first difference at index \(firstDifference): \
        received \(firstDifference < actual.count ? actual[firstDifference] : "nothing"), \
        expected \(firstDifference < expected.count ? expected[firstDifference] : "nothing")
        """, sourceLocation: sourceLocation)
}
