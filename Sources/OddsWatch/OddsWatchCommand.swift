import ArgumentParser
import Contracts
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HummingbirdWSClient
import Logging
import ServiceSupport
import Synchronization

/// odds-watch: a terminal view of live odds. Subscribes to events on odds-service's WebSocket,
/// redraws a table as snapshots and deltas arrive, and reconnects with a resuming subscribe
/// (`versions`) when the connection drops, so a restart of odds-service shows as a blip only.
@main
struct OddsWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "odds-watch", abstract: "Live odds in the terminal, over odds-service's WebSocket.")

    @Option(help: "odds-service base URL (REST; the WebSocket is <url>/ws/odds).")
    var url = ProcessInfo.processInfo.environment["ODDS_SERVICE_URL"] ?? "http://127.0.0.1:8080"
    @Option(parsing: .upToNextOption, help: "Event ids to follow (default: the first --limit events odds-service lists).")
    var events: [String] = []
    @Option(help: "How many events to follow when none are named.") var limit = 4
    @Option(help: "Redraw interval in milliseconds.") var refreshMs = 250
    @Option(help: "Stop after this many seconds (0: until Ctrl-C).") var seconds = 0
    @Flag(help: "Print one line per delta instead of redrawing a table (also the default when stdout is not a terminal).")
    var lines = false

    func validate() throws {
        guard let base = URL(string: url), ["http", "https"].contains(base.scheme ?? "") else {
            throw ValidationError("--url must be an http(s) URL, got \(url)")
        }
        guard (1...100).contains(limit) else { throw ValidationError("--limit must be 1...100") }
        guard (20...10_000).contains(refreshMs) else { throw ValidationError("--refresh-ms must be 20...10000") }
        for event in events where !OddsUpdateValidator.isValidEventId(event) {
            throw ValidationError("not a valid event id: \(event)")
        }
    }

    func run() async throws {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        let wsURL = base.replacingOccurrences(of: "http", with: "ws", options: .anchored) + "/ws/odds"
        let board = SharedBoard()
        let plain = lines || isatty(STDOUT_FILENO) == 0
        let title = "odds-watch — \(wsURL)   (Ctrl-C to stop)"

        // Ctrl-C / SIGTERM end the loops below, so the cursor is restored and the demo script
        // (waiting on this process) can stop what it started.
        let interrupted = Self.watchForInterrupt()
        let followed: [String]
        do {
            followed = try await resolveEvents(base: base, board: board, interrupted: interrupted)
        } catch is CancellationError {
            return
        }
        let session = Task { await stream(wsURL: wsURL, eventIds: followed, board: board, plain: plain) }
        let deadline = seconds > 0 ? ContinuousClock.now + .seconds(seconds) : nil
        if !plain { print("\u{1B}[?25l", terminator: "") }  // hide the cursor while redrawing
        defer { if !plain { print("\u{1B}[?25h") } }
        while !Task.isCancelled && !interrupted.stop.load(ordering: .relaxed) {
            if let deadline, ContinuousClock.now >= deadline { break }
            if !plain {
                let text = board.withLock { $0.render(now: Date(), colour: true, title: title) }
                print("\u{1B}[H\u{1B}[2J" + text)
                fflush(nil)  // all streams: stdout is a C global Swift 6 will not touch
            }
            try? await Task.sleep(for: .milliseconds(refreshMs))
        }
        session.cancel()
        let summary = board.withLock { "frames \($0.framesReceived), markets \($0.rows.count), stale ignored \($0.staleIgnored)" }
        print("odds-watch: \(summary)")
    }

    /// The named events, or the first `limit` listed by odds-service (waiting until some exist).
    func resolveEvents(base: String, board: SharedBoard, interrupted: Interrupt) async throws -> [String] {
        if !events.isEmpty { return events }
        var announced = false
        while true {
            if interrupted.stop.load(ordering: .relaxed) { throw CancellationError() }
            do {
                let (data, response) = try await URLSession.shared.data(from: URL(string: base + "/v1/events")!)
                if (response as? HTTPURLResponse)?.statusCode == 200 {
                    let list = try ContractCoding.decoder.decode(EventListResponse.self, from: data)
                    let ids = list.events.map(\.eventId).sorted().prefix(limit)
                    if !ids.isEmpty { return Array(ids) }
                }
            } catch {
                board.withLock { $0.status = "odds-service not reachable: \(error.localizedDescription)" }
            }
            if !announced {
                print("odds-watch: waiting for odds-service at \(base) to list events…")
                announced = true
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Connects, subscribes (resuming from what is already shown) and applies frames; on a
    /// drop, waits with capped backoff and goes again.
    func stream(wsURL: String, eventIds: [String], board: SharedBoard, plain: Bool) async {
        var logger = Logger(label: "odds-watch")
        logger.logLevel = .critical
        var delay = Duration.milliseconds(200)
        while !Task.isCancelled {
            let framesBefore = board.withLock { board in
                board.status = "connecting to \(wsURL)"
                return board.framesReceived
            }
            do {
                // A server that closes mid-handshake would leave the client library waiting
                // forever: give the upgrade 10 s, then reconnect.
                _ = try await Deadline.untilStarted("the WebSocket handshake", timeout: .seconds(10)) { [logger] handshakeDone in
                    try await WebSocketClient.connect(url: wsURL, configuration: .init(maxFrameSize: 1 << 22), logger: logger) {
                    inbound, outbound, _ in
                    handshakeDone()
                    for eventId in eventIds {
                        let versions = board.withLock { $0.versions(of: eventId) }
                        try await outbound.write(.text(Self.subscribeFrame(eventId: eventId, versions: versions)))
                    }
                    board.withLock { $0.status = "live, \(eventIds.count) events: \(eventIds.joined(separator: " "))" }
                    for try await message in inbound.messages(maxSize: 1 << 22) {
                        guard case .text(let text) = message,
                              let decoded = try? ContractCoding.decoder.decode(ServerMessage.self, from: Data(text.utf8))
                        else { continue }
                        let now = Date()
                        board.withLock { $0.apply(decoded, receivedAt: now) }
                        if plain { Self.printLine(decoded, at: now) }
                    }
                    }
                }
                board.withLock { $0.status = "disconnected; reconnecting" }
            } catch {
                board.withLock { $0.status = "disconnected (\(error)); reconnecting" }
            }
            // A connection that delivered frames was healthy: start the backoff over.
            delay = board.withLock { $0.framesReceived } > framesBefore ? .milliseconds(200) : min(delay * 2, .seconds(5))
            try? await Task.sleep(for: delay)
        }
    }

    /// SIGINT/SIGTERM handled through dispatch sources instead of the default "terminate now".
    final class Interrupt: Sendable {
        let stop = Atomic<Bool>(false)
        nonisolated(unsafe) var sources: [any DispatchSourceSignal] = []
    }

    static func watchForInterrupt() -> Interrupt {
        let interrupt = Interrupt()
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { interrupt.stop.store(true, ordering: .relaxed) }
            source.resume()
            interrupt.sources.append(source)
        }
        return interrupt
    }

    /// "SUSPENDED (feed down since 12:01:02)" or "OPEN again (since 12:03:10)".
    static func statusLine(_ status: EventStatus) -> String {
        if status.isSuspended {
            let why = status.reason == .feedDown ? "feed down" : (status.reason?.rawValue ?? "platform")
            return "SUSPENDED (\(why) since \(WatchBoard.clock(status.since)))"
        }
        return "OPEN again (since \(WatchBoard.clock(status.since)))"
    }

    static func subscribeFrame(eventId: String, versions: [String: Int64]) -> String {
        var frame: [String: Any] = ["type": "subscribe", "eventId": eventId]
        if !versions.isEmpty { frame["versions"] = versions }
        let data = (try? JSONSerialization.data(withJSONObject: frame, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func printLine(_ message: ServerMessage, at now: Date) {
        switch message {
        case .snapshot(let eventId, let markets, let status):
            let suspended = status.map { " " + Self.statusLine($0) } ?? ""
            print("snapshot \(eventId): \(markets.count) markets\(suspended)")
        case .status(let eventId, let status):
            print("\(eventId) \(Self.statusLine(status))")
        case .odds(_, let update):
            let prices = update.odds.keys.sorted(by: WatchBoard.selectionOrder)
                .map { "\($0)=\(String(format: "%.2f", update.odds[$0] ?? 0))" }.joined(separator: " ")
            let latency = Int64((now.timeIntervalSince1970 * 1000).rounded(.down)) - update.updatedAt.millisecondsSinceEpoch
            print("\(update.eventId) \(update.market) v\(update.version) \(prices) \(update.status.rawValue) (\(latency) ms)")
        case .error(let code, let message):
            print("error \(code): \(message)")
        case .pong, .heartbeat:
            break
        }
        fflush(nil)  // all streams: stdout is a C global Swift 6 will not touch
    }
}

/// The board shared by the WebSocket session (writer) and the redraw loop (reader).
final class SharedBoard: Sendable {
    private let board = Mutex(WatchBoard())

    func withLock<Result: Sendable>(_ body: (inout WatchBoard) -> Result) -> Result {
        board.withLock { body(&$0) }
    }
}
