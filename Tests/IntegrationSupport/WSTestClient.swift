import Contracts
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// A real WebSocket client for tests: records every text frame with its arrival time; can be
/// told not to read (a stalled consumer) until `resumeReading()`.
public final class WSTestClient: Sendable {
    public struct Received: Sendable {
        public let at: ContinuousClock.Instant
        public let wallMs: Int64
        public let text: String
        public var message: ServerMessage? { try? ContractCoding.decoder.decode(ServerMessage.self, from: Data(text.utf8)) }
    }

    private struct State {
        var outbound: WebSocketOutboundWriter?
        var received: [Received] = []
        var readGate: CheckedContinuation<Void, Never>?
        var reading: Bool
        var finished = false
        var closeFrame: WebSocketCloseFrame?
        var error: String?
    }

    private let state: Mutex<State>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    private init(reading: Bool) {
        state = Mutex(State(reading: reading))
    }

    public static func connect(_ url: String, reading: Bool = true, maxFrameSize: Int = 1 << 22,
                        autoPing: AutoPingSetup = .disabled) async throws -> WSTestClient {
        let client = WSTestClient(reading: reading)
        var logger = Logger(label: "ws-test-client")
        logger.logLevel = .critical
        let task = Task {
            do {
                let close = try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: maxFrameSize, autoPing: autoPing), logger: logger
                ) { inbound, outbound, _ in
                    let mustWait = client.state.withLock { state -> Bool in
                        state.outbound = outbound
                        return !state.reading
                    }
                    if mustWait {
                        await withCheckedContinuation { (gate: CheckedContinuation<Void, Never>) in
                            let open = client.state.withLock { state -> Bool in
                                if state.reading { return true }
                                state.readGate = gate
                                return false
                            }
                            if open { gate.resume() }
                        }
                    }
                    for try await message in inbound.messages(maxSize: maxFrameSize) {
                        guard case .text(let text) = message else { continue }
                        let now = ContinuousClock.now
                        let wall = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
                        client.state.withLock { $0.received.append(Received(at: now, wallMs: wall, text: text)) }
                    }
                }
                client.state.withLock { $0.closeFrame = close; $0.finished = true }
            } catch {
                client.state.withLock { $0.error = "\(error)"; $0.finished = true }
            }
        }
        client.task.withLock { $0 = task }
        let connected = try await TestInfrastructure.waitUntil(timeout: .seconds(10), interval: .milliseconds(5)) {
            client.state.withLock { $0.outbound != nil || $0.finished }
        }
        guard connected, client.state.withLock({ $0.outbound != nil }) else {
            throw TestFailure("websocket connection to \(url): \(client.state.withLock { $0.error ?? "closed" })")
        }
        return client
    }

    public func send(_ text: String) async throws {
        guard let outbound = state.withLock({ $0.outbound }) else { return }
        try await outbound.write(.text(text))
    }

    public func sendBinary(_ bytes: [UInt8]) async throws {
        guard let outbound = state.withLock({ $0.outbound }) else { return }
        try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
    }

    public func resumeReading() {
        let gate = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.reading = true
            let gate = state.readGate
            state.readGate = nil
            return gate
        }
        gate?.resume()
    }

    public var received: [Received] { state.withLock { $0.received } }
    public var messages: [ServerMessage] { received.compactMap(\.message) }
    public var isFinished: Bool { state.withLock { $0.finished } }
    public var closeCode: WebSocketErrorCode? { state.withLock { $0.closeFrame?.closeCode } }

    /// Waits until `count` frames matching `predicate` arrived; returns the matching frames.
    @discardableResult
    public func waitFor(
        _ count: Int = 1, timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (ServerMessage) -> Bool
    ) async throws -> [ServerMessage] {
        _ = try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(5)) {
            self.messages.filter(predicate).count >= count
        }
        return messages.filter(predicate)
    }

    public func waitUntilFinished(timeout: Duration = .seconds(10)) async throws -> Bool {
        try await TestInfrastructure.waitUntil(timeout: timeout, interval: .milliseconds(10)) { self.isFinished }
    }

    public func close() async {
        if let outbound = state.withLock({ $0.outbound }), !isFinished {
            try? await outbound.close(.normalClosure, reason: nil)
        }
        resumeReading()
        _ = try? await waitUntilFinished(timeout: .seconds(3))
        task.withLock { $0?.cancel() }
    }
}

extension ServerMessage {
    public var isSnapshot: Bool { if case .snapshot = self { true } else { false } }
    public var isOdds: Bool { if case .odds = self { true } else { false } }
    public var isHeartbeat: Bool { if case .heartbeat = self { true } else { false } }
    public var isPong: Bool { if case .pong = self { true } else { false } }
    public var errorCode: String? { if case .error(let code, _) = self { code } else { nil } }
    public var snapshotMarkets: [OddsUpdate]? { if case .snapshot(_, let markets, _) = self { markets } else { nil } }
    /// The platform status a snapshot carried (its feed was down), or nil.
    public var snapshotStatus: EventStatus? { if case .snapshot(_, _, let status) = self { status } else { nil } }
    public var isStatus: Bool { if case .status = self { true } else { false } }
    /// A `status` frame's event and status.
    public var statusFrame: (eventId: String, status: EventStatus)? {
        if case .status(let eventId, let status) = self { (eventId, status) } else { nil }
    }
    public var oddsPayload: OddsUpdate? { if case .odds(_, let payload) = self { payload } else { nil } }
}
