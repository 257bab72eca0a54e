import Contracts
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOPosix
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// Wires the supplier: metrics, journal, feed hub, WebSocket server and feed loop, in a
/// ServiceGroup that shuts down on SIGTERM/SIGINT. Services are listed dependencies first, edge
/// last; the group stops them in reverse order, so the feed loop stops (and drains its clients)
/// before the server, the journal and the operations endpoint.
enum SupplierApplication {
    static func build(configuration: SupplierConfiguration, logger: Logger) throws -> ServiceGroup {
        let registry = MetricsSetup.bootstrap()
        let metrics = SupplierMetrics()
        let journal = try configuration.journalPath.map { try Journal(path: $0) }
        // A new epoch on every start: this process has none of an earlier run's history. Versions
        // continue above any earlier run (see FeedGenerator.init).
        let started = Timestamp.now()
        let epoch = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let generator = FeedGenerator(events: Catalogue.events(generatedCount: configuration.generatedEvents),
                                      faults: configuration.faults, seed: configuration.seed,
                                      firstVersion: started.millisecondsSinceEpoch * 1000)
        let book = generator.book(at: started)
        if let journal {
            for (market, text) in book.enumerated() {
                journal.append(FrameEncoder.journalLine(epoch: epoch, seq: 0, frame: EmittedFrame(
                    kind: .initial, text: text, expectedReason: nil, market: market)))
            }
        }
        let hub = FeedHub(epoch: epoch, book: book,
                          replayLog: ReplayLog(capacity: configuration.replayFrames, maxAge: configuration.replayMaxAge),
                          clientBufferCapacity: configuration.clientBufferCapacity, journal: journal,
                          metrics: metrics, logger: Logger(label: "supplier.feed"))
        let desk = ConfirmationDesk(seed: configuration.seed ^ 0xC0FF_EE00)
        let serverReady = ListeningFlag()

        // One event loop serves every feed connection and runs the feed's ticks, so a tick's
        // frames are written by the thread its timer woke (see FeedTicker). One stream, written
        // in order to every client, needs no second loop: 20,000 frames/s take under half a core.
        let feedLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let router = SupplierServer.router(hub: hub, desk: desk, metrics: metrics)
        let feedServer = Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                // No auto-ping: a client that stops reading (ingest waiting for Kafka) is handled
                // by the bounded buffer, not by a ping timeout.
                configuration: .init(ws: .init(maxFrameSize: 1 << 16, autoPing: .disabled, closeTimeout: .seconds(5)))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.httpPort), serverName: "supplier-simulator"),
            onServerRunning: { _ in serverReady.set() },
            eventLoopGroupProvider: .shared(feedLoop),
            logger: Logger(label: "supplier.http"))

        let operations = OperationsServer.application(
            host: configuration.host, port: configuration.metricsPort, registry: registry,
            readiness: [ReadinessCheck(name: "feed_server") { serverReady.isSet }],
            logger: Logger(label: "supplier.operations"))

        var feed = FeedService(
            hub: hub, eventLoop: feedLoop.next(), rate: configuration.rate, generator: generator,
            faults: configuration.faults, seed: configuration.seed,
            disconnectEvery: configuration.disconnectEvery, maxFrames: configuration.maxFrames, logger: Logger(label: "supplier.feed"))

        feed.aliveInterval = configuration.aliveInterval
        var services: [any Service] = [operations]
        if let journal { services.append(JournalFlusher(journal: journal)) }
        services += [feedServer, feed] as [any Service]
        logger.info("supplier-simulator starting", metadata: [
            "ws": "ws://\(configuration.host):\(configuration.httpPort)/ws",
            "metrics_port": "\(configuration.metricsPort)",
            "journal": "\(configuration.journalPath ?? "off")",
            "client_buffer": "\(configuration.clientBufferCapacity)", "epoch": "\(epoch)",
            "replay_log": "\(configuration.replayFrames) frames, \(configuration.replayMaxAge)",
        ])
        var groupConfiguration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // A second signal, or a client that never answers the close, must not hang the process.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(30)
        return ServiceGroup(configuration: groupConfiguration)
    }
}

/// Set once the WebSocket server listens; read by `/readyz`.
final class ListeningFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
