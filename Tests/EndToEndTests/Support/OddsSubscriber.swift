import Contracts
import Foundation
import IntegrationSupport
import Synchronization

/// A WebSocket client of odds-service that follows every event of the catalogue the way a real
/// client would: it subscribes to all of them; when the connection drops it waits until
/// odds-service is ready again, reconnects and resumes each event with the versions it already
/// has (`versions` is market → version and applies to every event of a frame, so a resume is one
/// subscribe frame per event). It reads as fast as it can and records every update it gets.
final class OddsSubscriber: Sendable {
    enum Source: String, Sendable { case snapshot, delta }

    struct Observation: Sendable {
        /// 0 for the first connection, 1 after the first reconnect, ...
        let connection: Int
        let source: Source
        let update: OddsUpdate
    }

    private struct State {
        var observations: [Observation] = []
        /// Highest version received per market, over all connections.
        var newest: [MarketKey: OddsUpdate] = [:]
        var connections = 0
        /// Per connection, how many snapshot frames arrived per event.
        var snapshots: [[String: Int]] = []
        /// Error frames and undecodable frames (none are expected).
        var problems: [String] = []
        var stopped = false
    }

    let url: String
    let readyURL: String
    let eventIds: [String]
    private let state = Mutex(State())
    private let loop = Mutex<Task<Void, Never>?>(nil)

    private init(url: String, readyURL: String, eventIds: [String]) {
        self.url = url
        self.readyURL = readyURL
        self.eventIds = eventIds
    }

    /// Starts following `eventIds` on odds-service at `url` (`readyURL`: its /readyz).
    static func start(url: String, readyURL: String, eventIds: [String]) -> OddsSubscriber {
        let subscriber = OddsSubscriber(url: url, readyURL: readyURL, eventIds: eventIds)
        subscriber.loop.withLock { $0 = Task { await subscriber.run() } }
        return subscriber
    }

    var observations: [Observation] { state.withLock { $0.observations } }
    var connectionCount: Int { state.withLock { $0.connections } }
    var snapshotCounts: [[String: Int]] { state.withLock { $0.snapshots } }
    var problems: [String] { state.withLock { $0.problems } }
    var newest: [MarketKey: OddsUpdate] { state.withLock { $0.newest } }
    var newestVersions: [MarketKey: Int64] { newest.mapValues(\.version) }

    /// True once connection `connection` has the snapshot of every event.
    func hasAllSnapshots(connection: Int) -> Bool {
        state.withLock { state in
            connection < state.snapshots.count && eventIds.allSatisfy { state.snapshots[connection][$0, default: 0] > 0 }
        }
    }

    func stop() async {
        state.withLock { $0.stopped = true }
        await loop.withLock { $0 }?.value
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func run() async {
        while !isStopped {
            guard await TestInfrastructure.httpGet(readyURL, timeout: 2)?.status == 200,
                  let client = try? await WSTestClient.connect(url)
            else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let (connection, resume) = state.withLock { state in
                state.connections += 1
                state.snapshots.append([:])
                return (state.connections - 1, state.newest)
            }
            try? await subscribe(client, resume: resume)
            var processed = 0
            while true {
                // `finished` is set after the last frame was recorded: read it first.
                let finished = client.isFinished
                let received = client.received
                if processed < received.count {
                    record(received[processed...], connection: connection)
                    processed = received.count
                }
                if finished || isStopped { break }
                try? await Task.sleep(for: .milliseconds(10))
            }
            await client.close()
        }
    }

    /// One frame for every event without anything to resume; one frame per event that has.
    private func subscribe(_ client: WSTestClient, resume: [MarketKey: OddsUpdate]) async throws {
        var fresh: [String] = []
        for event in eventIds {
            let versions = resume.values.filter { $0.eventId == event }.map { "\"\($0.market)\":\($0.version)" }
            if versions.isEmpty {
                fresh.append(event)
            } else {
                try await client.send(#"{"type":"subscribe","eventId":"\#(event)","versions":{\#(versions.joined(separator: ","))}}"#)
            }
        }
        if !fresh.isEmpty {
            try await client.send(#"{"type":"subscribe","eventIds":[\#(fresh.map { "\"\($0)\"" }.joined(separator: ","))]}"#)
        }
    }

    private func record(_ frames: ArraySlice<WSTestClient.Received>, connection: Int) {
        let messages = frames.map { ($0.text, $0.message) }
        state.withLock { state in
            for (text, message) in messages {
                switch message {
                case .snapshot(let eventId, let markets, _)?:
                    state.snapshots[connection][eventId, default: 0] += 1
                    for update in markets { Self.observe(update, .snapshot, connection, in: &state) }
                case .odds(_, let update)?:
                    Self.observe(update, .delta, connection, in: &state)
                case .heartbeat?, .pong?, .status?:
                    break
                case .error(let code, let message)?:
                    state.problems.append("connection \(connection): error frame \(code): \(message)")
                case nil:
                    state.problems.append("connection \(connection): undecodable frame \(text.prefix(200))")
                }
            }
        }
    }

    private static func observe(_ update: OddsUpdate, _ source: Source, _ connection: Int, in state: inout State) {
        state.observations.append(Observation(connection: connection, source: source, update: update))
        if update.version > state.newest[update.marketKey]?.version ?? 0 { state.newest[update.marketKey] = update }
    }
}
