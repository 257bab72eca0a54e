import ArgumentParser
import Foundation
import Logging
import ServiceSupport

/// `supplier-simulator`: a WebSocket odds feed with realistic prices and fault injection.
/// Flags override the environment variables named in their help.
@main
struct SupplierCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supplier-simulator",
        abstract: "Simulated odds supplier: OddsUpdate v1 frames over WebSocket at /ws, with fault injection.",
        discussion: """
        The feed advances only while at least one client is connected; frames are journaled (--journal) \
        when they are handed to the clients' buffers. A client whose buffer fills is disconnected.
        """)

    @Option(help: "Bind address (HTTP_HOST, default 0.0.0.0).") var host: String?
    @Option(help: "WebSocket/HTTP port (HTTP_PORT, default 8081).") var httpPort: String?
    @Option(help: "Metrics and health port (METRICS_PORT, default 9094).") var metricsPort: String?
    @Option(help: "Updates per second in total, 1...50000 (SUPPLIER_RATE, default 20).") var rate: String?
    @Option(help: "Generated events besides the four classic matches (SUPPLIER_EVENTS, default 6).") var events: String?
    @Option(help: "Random seed for prices and faults (SUPPLIER_SEED, default random).") var seed: String?
    @Option(help: "JSON Lines file recording every emitted frame (SUPPLIER_JOURNAL, default off).") var journal: String?
    @Option(help: "Probability of a malformed-JSON frame (SUPPLIER_FAULT_MALFORMED, default 0).") var faultMalformed: String?
    @Option(help: "Probability of a contract-invalid frame (SUPPLIER_FAULT_INVALID, default 0).") var faultInvalid: String?
    @Option(help: "Probability of a duplicate frame (SUPPLIER_FAULT_DUPLICATE, default 0).") var faultDuplicate: String?
    @Option(help: "Probability of an older version re-sent (SUPPLIER_FAULT_OUT_OF_ORDER, default 0).") var faultOutOfOrder: String?
    @Option(help: "Close every connection every N seconds, 0 = off (SUPPLIER_DISCONNECT_EVERY, default 0).") var disconnectEvery: String?
    @Option(help: "Frames buffered per client before it is disconnected as too slow (SUPPLIER_CLIENT_BUFFER, default 50000).") var clientBuffer: String?
    @Option(help: "Stream frames kept for clients that resume (SUPPLIER_REPLAY_FRAMES, default 100000).") var replayFrames: String?
    @Option(help: "Seconds of stream kept for clients that resume (SUPPLIER_REPLAY_SECONDS, default 600).") var replaySeconds: String?
    @Option(help: "Stop emitting after this many stream frames, 0 = never (SUPPLIER_MAX_FRAMES, default 0; for tests).") var maxFrames: String?
    @Option(help: "Milliseconds without anything to send before an alive frame goes out (SUPPLIER_ALIVE_INTERVAL_MS, default 1000).") var aliveInterval: String?
    @Option(help: "trace|debug|info|notice|warning|error|critical (LOG_LEVEL, default info).") var logLevel: String?
    @Option(help: "json|text (LOG_FORMAT, default json).") var logFormat: String?

    func run() async throws {
        let reader = ConfigurationReader(overrides: [
            "HTTP_HOST": host, "HTTP_PORT": httpPort, "METRICS_PORT": metricsPort,
            "SUPPLIER_RATE": rate, "SUPPLIER_EVENTS": events, "SUPPLIER_SEED": seed, "SUPPLIER_JOURNAL": journal,
            "SUPPLIER_FAULT_MALFORMED": faultMalformed, "SUPPLIER_FAULT_INVALID": faultInvalid,
            "SUPPLIER_FAULT_DUPLICATE": faultDuplicate, "SUPPLIER_FAULT_OUT_OF_ORDER": faultOutOfOrder,
            "SUPPLIER_DISCONNECT_EVERY": disconnectEvery, "SUPPLIER_CLIENT_BUFFER": clientBuffer,
            "SUPPLIER_REPLAY_FRAMES": replayFrames, "SUPPLIER_REPLAY_SECONDS": replaySeconds, "SUPPLIER_MAX_FRAMES": maxFrames,
            "SUPPLIER_ALIVE_INTERVAL_MS": aliveInterval,
            "LOG_LEVEL": logLevel, "LOG_FORMAT": logFormat,
        ])
        let (logging, supplier) = try ServiceCommand.loadConfiguration(service: "supplier-simulator") {
            (try LoggingConfiguration(reader: reader), try SupplierConfiguration(reader: reader))
        }
        LoggingSetup.bootstrap(service: "supplier-simulator", configuration: logging)
        let logger = Logger(label: "supplier")
        try await ServiceCommand.run(service: "supplier-simulator") {
            let group = try SupplierApplication.build(configuration: supplier, logger: logger)
            try await group.run()
        }
    }
}
