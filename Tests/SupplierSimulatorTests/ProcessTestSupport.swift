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

/// A WebSocket client that records every text frame it reads, until the server closes.
final class RecordingClient: Sendable {
    private let frames = Mutex<[String]>([])
    private let connections = Mutex(0)
    private let phaseText = Mutex("idle")
    /// Where the client is (for failure messages): connecting, reading, closed, waiting.
    var phase: String { phaseText.withLock { $0 } }

    var received: [String] { frames.withLock { $0 } }
    var connectionCount: Int { connections.withLock { $0 } }

    /// Reads one connection until the server closes it.
    func readUntilClosed(url: String) async throws {
        connections.withLock { $0 += 1 }
        var logger = Logger(label: "test.ws")
        logger.logLevel = .warning
        // The handshake is bounded (a server shutting down may close the connection before it
        // answers the upgrade, and the client library would wait forever); the reading is not.
        phaseText.withLock { $0 = "connecting" }
        defer { phaseText.withLock { $0 = "closed" } }
        _ = try await Deadline.untilStarted("the supplier's WebSocket handshake", timeout: .seconds(15)) { [logger] handshakeDone in
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 16), logger: logger) { inbound, _, _ in
                handshakeDone()
                self.phaseText.withLock { $0 = "reading" }
                defer { self.phaseText.withLock { $0 = "handler returned" } }
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    if case .text(let text) = message { self.frames.withLock { $0.append(text) } }
                }
            }
        }
    }

    /// Reconnects after every close until `stop` says so.
    func readReconnecting(url: String, pause: Duration = .milliseconds(50), until stop: @Sendable () -> Bool) async {
        while !stop() && !Task.isCancelled {
            try? await readUntilClosed(url: url)
            try? await Task.sleep(for: pause)
        }
    }
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
