import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HummingbirdWSClient
import IntegrationSupport
import Logging
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

enum HTTP {
    static func get(_ url: String) async throws -> (status: Int, body: String) {
        try await request(URLRequest(url: URL(string: url)!))
    }

    static func post(_ url: String, body: String) async throws -> (status: Int, body: String) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        return try await self.request(request)
    }

    static func request(_ request: URLRequest) async throws -> (status: Int, body: String) {
        var request = request
        request.timeoutInterval = 5
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }
}

/// A WebSocket client that records every text frame it reads, until the server closes.
final class RecordingClient: Sendable {
    private let frames = Mutex<[String]>([])
    private let connections = Mutex(0)

    var received: [String] { frames.withLock { $0 } }
    var connectionCount: Int { connections.withLock { $0 } }

    /// Reads one connection until the server closes it.
    func readUntilClosed(url: String) async throws {
        connections.withLock { $0 += 1 }
        var logger = Logger(label: "test.ws")
        logger.logLevel = .warning
        try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 16), logger: logger) { inbound, _, _ in
            for try await message in inbound.messages(maxSize: 1 << 16) {
                if case .text(let text) = message { self.frames.withLock { $0.append(text) } }
            }
        }
    }

    /// Reconnects after every close until `stop` says so.
    func readReconnecting(url: String, until stop: @Sendable () -> Bool) async {
        while !stop() {
            try? await readUntilClosed(url: url)
            try? await Task.sleep(for: .milliseconds(50))
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
