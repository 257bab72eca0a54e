import ArgumentParser
import CRDKafka
import Foundation

/// `kafka-dev-broker`: librdkafka's in-process mock cluster, run as its own process so that
/// development and tests have a Kafka protocol endpoint without an Apache Kafka installation.
///
/// The mock (librdkafka 2.0.2) binds random ports on 127.0.0.1 and offers no way to choose one,
/// so the bootstrap address is published through `--address-file` and the `ready` line.
/// It also cannot configure the partition count of auto-created topics (fixed at 4 in
/// librdkafka), so topics that need another count are created up front with `--topic`.
@main
struct KafkaDevBroker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-dev-broker",
        abstract: "Runs librdkafka's mock Kafka cluster on 127.0.0.1 for development and tests.",
        discussion: """
            Data lives in memory only (about 5 MiB per partition; older data is dropped). \
            Auto-created topics get 4 partitions. Stop with SIGTERM or SIGINT.
            """
    )

    @Option(name: .long, help: "Number of mock brokers (1...16).")
    var brokers: Int = 1

    @Option(name: .customLong("topic"), help: "Topic to create at start, as NAME:PARTITIONS (repeatable).")
    var topics: [String] = []

    @Option(name: .long, help: "File that receives the bootstrap address once the cluster is up (written atomically).")
    var addressFile: String?

    @Flag(inversion: .prefixedNo, help: """
        Answer a waiting fetch as soon as data arrives, as real Kafka does (a front relaying to the mock).         --no-long-poll exposes the mock itself, which holds an empty fetch for its whole max wait.
        """)
    var longPoll = true

    @Flag(inversion: .prefixedNo, help: """
        Answer fetches from the front's own copy of each partition's newest records (the mock walks its whole log for every fetch and answers one batch per partition). --no-front-log sends every fetch to the mock, for comparisons.
        """)
    var frontLog = true

    /// Parses and runs, but reports any failure as exactly one line on stderr (ArgumentParser
    /// would add a usage block, which scripts and tests cannot match reliably).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help and friends
            let message = Self.message(for: error)
                .split(separator: "\n")
                .first { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                .map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("kafka-dev-broker: error: \(message)\n".utf8))
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    mutating func run() throws {
        guard (1...16).contains(brokers) else {
            throw ValidationError("--brokers must be between 1 and 16, got \(brokers)")
        }
        let requested = try (topics.isEmpty ? ["odds_updates:12", "odds_updates_dlq:1", "odds_feed_status:1"] : topics)
            .map(TopicSpec.init(parsing:))

        // Block the stop signals before librdkafka starts its threads (they inherit the mask),
        // so that only `sigwait` below ever sees them.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        // A peer that vanished must never end the broker (the front writes to client sockets).
        signal(SIGPIPE, SIG_IGN)

        let cluster = try MockCluster(brokers: brokers)
        for topic in requested {
            try cluster.createTopic(topic)
        }
        var bootstrap = cluster.bootstrapServers
        var front: LongPollFront?
        if longPoll {
            let brokerPorts = bootstrap.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { Int32($0) } }
            let started = try LongPollFront(brokerPorts: brokerPorts, answersFromLog: frontLog)
            started.start()
            bootstrap = started.bootstrap
            front = started
        }

        if let addressFile {
            try Self.writeAtomically(bootstrap + "\n", to: addressFile)
        }
        let topicList = requested.map { "\($0.name):\($0.partitions)" }.joined(separator: ",")
        Self.say("kafka-dev-broker ready bootstrap=\(bootstrap) brokers=\(brokers) topics=\(topicList) long_poll=\(longPoll) front_log=\(longPoll && frontLog)")

        var received: Int32 = 0
        sigwait(&stopSignals, &received)

        if let addressFile { try? FileManager.default.removeItem(atPath: addressFile) }
        cluster.shutdown()
        let fetches = front.map {
            " fetches_answered_by_front=\($0.fetchesAnswered.fromLog) fetches_sent_to_mock=\($0.fetchesAnswered.fromBroker)"
        } ?? ""
        Self.say("kafka-dev-broker stopped (signal \(received))\(fetches)")
    }

    /// Unbuffered write, so a parent process reading our stdout sees the line immediately.
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Readers poll for the file; a temp file + rename means they never see a partial address.
    static func writeAtomically(_ contents: String, to path: String) throws {
        let temporary = path + ".tmp.\(getpid())"
        do {
            try contents.write(toFile: temporary, atomically: false, encoding: .utf8)
        } catch {
            throw ValidationError("cannot write address file \(temporary): \(error.localizedDescription)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ValidationError("cannot rename address file to \(path): \(reason)")
        }
    }
}

struct TopicSpec {
    let name: String
    let partitions: Int

    init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":") else {
            throw ValidationError("--topic expects NAME:PARTITIONS, got '\(text)'")
        }
        let name = String(text[..<colon])
        let count = String(text[text.index(after: colon)...])
        let legal = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "." || $0 == "_" || $0 == "-"
        }
        guard !name.isEmpty, name.count <= 249, legal, name != ".", name != ".." else {
            throw ValidationError("--topic '\(text)': topic name must be 1...249 characters of [A-Za-z0-9._-]")
        }
        guard let partitions = Int(count), (1...10_000).contains(partitions) else {
            throw ValidationError("--topic '\(text)': partition count must be an integer in 1...10000")
        }
        self.name = name
        self.partitions = partitions
    }
}

/// Owns the rd_kafka_t that hosts the mock cluster (librdkafka needs a client instance for
/// the cluster's bookkeeping threads) and the cluster itself.
final class MockCluster {
    private let host: OpaquePointer
    private var cluster: OpaquePointer?

    init(brokers: Int) throws {
        let configuration = rd_kafka_conf_new()
        var errorText = [CChar](repeating: 0, count: 512)
        // The hosting client never talks to a broker; keep its own logging to real problems.
        _ = rd_kafka_conf_set(configuration, "log_level", "4", &errorText, errorText.count)
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, configuration, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(configuration)
            throw ValidationError("cannot create librdkafka handle: \(String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        host = handle
        guard let created = rd_kafka_mock_cluster_new(handle, Int32(brokers)) else {
            rd_kafka_destroy(handle)
            throw ValidationError("librdkafka could not start a mock cluster with \(brokers) broker(s)")
        }
        cluster = created
    }

    var bootstrapServers: String {
        guard let cluster, let text = rd_kafka_mock_cluster_bootstraps(cluster) else { return "" }
        return String(cString: text)
    }

    func createTopic(_ topic: TopicSpec) throws {
        guard let cluster else { return }
        let result = rd_kafka_mock_topic_create(cluster, topic.name, Int32(topic.partitions), 1)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw ValidationError("cannot create topic \(topic.name): \(String(cString: rd_kafka_err2str(result)))")
        }
    }

    func shutdown() {
        if let cluster {
            rd_kafka_mock_cluster_destroy(cluster)
            self.cluster = nil
        }
    }

    deinit {
        shutdown()
        rd_kafka_destroy(host)
    }
}
