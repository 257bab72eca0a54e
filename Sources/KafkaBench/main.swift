import ArgumentParser
import Foundation
import Histogram
import Kafka
import Logging

/// Throughput and latency of the Kafka layer against a broker (by default a private
/// `kafka-dev-broker` started from the same directory as this executable).
@main
struct KafkaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-bench",
        abstract: "Measures producer (delivery confirmed) and consumer throughput of the Kafka layer.",
        subcommands: [All.self, Produce.self, Consume.self],
        defaultSubcommand: All.self
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Bootstrap servers. Without it a kafka-dev-broker is started (and stopped) next to this executable.")
    var brokers: String?

    @Option(help: "Messages to produce / consume.")
    var messages: Int = 1_000_000

    @Option(help: "Value size in bytes.")
    var size: Int = 250

    @Option(help: "Partitions of the consumer benchmark topic (the dev broker keeps ~5 MiB per partition, so keep messages*size/partitions well below that).")
    var partitions: Int = 128

    @Option(help: "Partitions of the producer benchmark topic (odds_updates has 12).")
    var producePartitions: Int = 12

    @Option(help: "Producer linger.ms.")
    var lingerMs: Int = 10

    @Option(help: "Producer batch.num.messages.")
    var batchMessages: Int = 10_000

    @Option(help: "Producer batch.size (bytes).")
    var batchBytes: Int = 1_000_000

    @Option(help: "Producer in-flight bound (and queue.buffering.max.messages). Measured best around 10000 on 2 cores: more only queues (latency) and thrashes caches.")
    var inFlight: Int = 10_000

    @Option(help: "Consumer fetch.wait.max.ms.")
    var fetchWaitMs: Int = 10

    @Option(help: "Log level for the Kafka layer.")
    var logLevel: String = "warning"

    var logger: Logger {
        var logger = Logger(label: "kafka-bench")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        return logger
    }

    func validate() throws {
        guard messages > 0 else { throw ValidationError("--messages must be positive") }
        guard size > 0 else { throw ValidationError("--size must be positive") }
        guard (1...10_000).contains(partitions), (1...10_000).contains(producePartitions) else {
            throw ValidationError("--partitions and --produce-partitions must be in 1...10000")
        }
    }

    func producerConfiguration(_ brokers: String) -> KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(bootstrapServers: brokers)
        configuration.clientID = "kafka-bench"
        configuration.linger = .milliseconds(lingerMs)
        configuration.batchMaxMessages = batchMessages
        configuration.batchMaxBytes = batchBytes
        configuration.queueMaxMessages = inFlight
        configuration.queueMaxKilobytes = 2_097_151
        configuration.maxInFlightMessages = inFlight
        configuration.compression = .none
        return configuration
    }

    func consumerConfiguration(_ brokers: String, group: String) -> KafkaConsumerConfiguration {
        var configuration = KafkaConsumerConfiguration(bootstrapServers: brokers, groupID: group)
        configuration.clientID = "kafka-bench"
        configuration.sessionTimeout = .seconds(6)
        configuration.heartbeatInterval = .milliseconds(500)
        configuration.fetchMaxWait = .milliseconds(fetchWaitMs)
        configuration.maxPartitionFetchBytes = 1_048_576
        configuration.fetchMaxBytes = 52_428_800
        configuration.queuedMinMessages = 1_000_000
        configuration.queuedMaxKilobytes = 262_144
        return configuration
    }
}

struct All: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Producer, then consumer benchmark (default).")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await withBroker(options) { broker in
            try await produceBenchmark(options, broker: broker)
            print("")
            try await consumeBenchmark(options, broker: broker)
        }
    }
}

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Producer throughput with every delivery confirmed by the broker.")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await withBroker(options) { try await produceBenchmark(options, broker: $0) }
    }
}

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Consumer throughput on a pre-produced topic.")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await withBroker(options) { try await consumeBenchmark(options, broker: $0) }
    }
}

// MARK: - Benchmarks

func produceBenchmark(_ options: CommonOptions, broker: Broker) async throws {
    let brokers = broker.bootstrap
    let topic = broker.produceTopic
    let producer = try KafkaProducer(configuration: options.producerConfiguration(brokers), logger: options.logger)
    let value = [UInt8](repeating: 0x61, count: options.size)
    let keys = (0..<10_000).map { Array("event-\($0)".utf8) }

    // Warm up metadata and connections (and auto-create the topic) outside the measurement.
    _ = try await producer.send(KafkaProducerMessage(topic: topic, key: keys[0], value: value))
    let partitionCount = try await actualPartitions(of: topic, brokers: brokers, options: options)

    let count = options.messages
    let started = ContinuousClock.now
    let result = try await withThrowingTaskGroup(of: ProduceResult?.self) { group in
        group.addTask {
            var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
            var failed = 0
            var received = 0
            for await report in producer.deliveryReports {
                received += 1
                if report.isDelivered {
                    _ = histogram.record(UInt64(max(0, report.latencyMicroseconds)))
                } else {
                    failed += 1
                }
                if received == count { break }
            }
            return ProduceResult(received: received, failed: failed, finished: .now, latency: histogram)
        }
        group.addTask {
            for index in 0..<count {
                try await producer.enqueue(KafkaProducerMessage(topic: topic, key: keys[index % keys.count], value: value))
            }
            return nil
        }
        var result: ProduceResult?
        for try await partial in group where partial != nil { result = partial }
        return result!
    }
    await producer.shutdown()

    let seconds = (result.finished - started).seconds
    print("producer: \(count) messages x \(options.size) B, 10000 keys, topic \(topic) (\(partitionCount) partitions), delivery confirmed (acks=all, idempotent)")
    print("  confirmed: \(result.received - result.failed), failed: \(result.failed)")
    print(String(format: "  throughput: %.0f msg/s, %.1f MB/s, elapsed %.2f s", Double(result.received) / seconds, Double(result.received * options.size) / seconds / 1_000_000, seconds))
    print(String(format: "  delivery latency: p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, max %.2f ms",
                 milliseconds(result.latency.valueAtPercentile(50)), milliseconds(result.latency.valueAtPercentile(99)),
                 milliseconds(result.latency.valueAtPercentile(99.9)), milliseconds(result.latency.max)))
    printMachine(options)
}

struct ProduceResult: Sendable {
    let received: Int
    let failed: Int
    let finished: ContinuousClock.Instant
    let latency: Histogram<UInt64>
}

func consumeBenchmark(_ options: CommonOptions, broker: Broker) async throws {
    let brokers = broker.bootstrap
    let topic = broker.consumeTopic
    // Pre-produce (not measured), spread evenly over the partitions.
    let producer = try KafkaProducer(configuration: options.producerConfiguration(brokers), logger: options.logger)
    let value = [UInt8](repeating: 0x62, count: options.size)
    // The first message creates the topic if the broker auto-creates; then spread the rest
    // evenly over the partitions the topic really has.
    _ = try await producer.send(KafkaProducerMessage(topic: topic, partition: 0, key: nil, value: value))
    let partitions = Int32(try await actualPartitions(of: topic, brokers: brokers, options: options))
    let count = options.messages - 1
    let perPartitionBytes = options.messages / Int(partitions) * (options.size + 80)
    if perPartitionBytes > 5 * 1_048_576 * 9 / 10 {
        print("warning: ~\(perPartitionBytes / 1024) KiB per partition; the dev broker keeps only ~5 MiB per partition and drops the oldest messages (use more --partitions)")
    }
    let produced = 1 + (try await withThrowingTaskGroup(of: Int.self) { group in
        group.addTask {
            var delivered = 0
            var seen = 0
            for await report in producer.deliveryReports {
                seen += 1
                if report.isDelivered { delivered += 1 }
                if seen == count { break }
            }
            return delivered
        }
        group.addTask {
            for index in 0..<count {
                try await producer.enqueue(KafkaProducerMessage(topic: topic, partition: Int32(index) % partitions, key: nil, value: value))
            }
            return 0
        }
        var delivered = 0
        for try await partial in group { delivered += partial }
        return delivered
    })
    await producer.shutdown()

    let consumer = try KafkaConsumer(
        configuration: options.consumerConfiguration(brokers, group: "bench_\(UInt32.random(in: 0...UInt32.max))"),
        topics: [topic],
        logger: options.logger
    )
    var received = 0
    var bytes = 0
    // The clock starts with the poll call in which partitions were assigned (fetching starts
    // then), so the group join (about 3 s on the dev broker) is excluded but prefetch is not.
    var started: ContinuousClock.Instant?
    var last = ContinuousClock.now
    let joinDeadline = ContinuousClock.now + .seconds(30)
    while received < produced {
        let pollStarted = ContinuousClock.now
        let batch = try await consumer.poll(maxMessages: 10_000, maxWait: .milliseconds(100))
        let now = ContinuousClock.now
        if started == nil && !consumer.assignment.isEmpty { started = pollStarted }
        if batch.isEmpty {
            if started != nil && now - last > .seconds(5) { break }  // nothing more is coming
            if started == nil && now > joinDeadline { break }
            continue
        }
        last = now
        received += batch.count
        for message in batch { bytes += message.value.count }
    }
    try await consumer.close()

    print("consumer: topic \(topic) (\(partitions) partitions), \(produced) produced and confirmed, \(received) consumed")
    if received < produced {
        print("  NOTE: \(produced - received) message(s) not consumed (dev broker retention ~5 MiB per partition drops the oldest data)")
    }
    if let started, received > 0 {
        let seconds = max((last - started).seconds, 1e-9)
        print(String(format: "  throughput: %.0f msg/s, %.1f MB/s, elapsed %.2f s (from partition assignment to last message; group join excluded)",
                     Double(received) / seconds, Double(bytes) / seconds / 1_000_000, seconds))
    }
    printMachine(options)
}

func actualPartitions(of topic: String, brokers: String, options: CommonOptions) async throws -> Int {
    let admin = try KafkaAdmin(bootstrapServers: brokers, logger: options.logger)
    guard let count = try await admin.partitionCount(of: topic) else {
        throw ValidationError("topic \(topic) does not exist on \(brokers)")
    }
    return count
}

func prepareTopic(_ topic: String, partitions: Int, options: CommonOptions, brokers: String) async throws {
    let admin = try KafkaAdmin(bootstrapServers: brokers, logger: options.logger)
    let result = try await admin.createTopic(topic, partitions: partitions, timeout: .seconds(3))
    if case .unsupported = result {
        print("note: broker cannot create topics; \(topic) will be auto-created with the broker's default partition count")
    }
}

func printMachine(_ options: CommonOptions) {
    var system = utsname()
    uname(&system)
    let machine = withUnsafeBytes(of: &system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    print("  machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(machine), \(ProcessInfo.processInfo.physicalMemory / 1_073_741_824) GiB RAM; settings: linger.ms=\(options.lingerMs) batch.num.messages=\(options.batchMessages) batch.size=\(options.batchBytes) in-flight=\(options.inFlight) fetch.wait.max.ms=\(options.fetchWaitMs) compression=none")
}

func milliseconds(_ microseconds: UInt64) -> Double { Double(microseconds) / 1_000 }

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}

// MARK: - Dev broker

struct Broker: Sendable {
    let bootstrap: String
    let produceTopic: String
    let consumeTopic: String
}

/// Runs `body` against `--brokers` (creating fresh topics where the broker allows), or against a
/// private kafka-dev-broker with the topics pre-created, stopped afterwards.
func withBroker(_ options: CommonOptions, _ body: (Broker) async throws -> Void) async throws {
    if let brokers = options.brokers {
        let suffix = UInt32.random(in: 0...UInt32.max)
        let broker = Broker(bootstrap: brokers, produceTopic: "bench_produce_\(suffix)", consumeTopic: "bench_consume_\(suffix)")
        try await prepareTopic(broker.produceTopic, partitions: options.producePartitions, options: options, brokers: brokers)
        try await prepareTopic(broker.consumeTopic, partitions: options.partitions, options: options, brokers: brokers)
        try await body(broker)
        return
    }
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("kafka-dev-broker")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw ValidationError("no --brokers given and no kafka-dev-broker next to this executable (\(executable.path)); build it with `swift build --product kafka-dev-broker`")
    }
    let addressFile = FileManager.default.temporaryDirectory.appendingPathComponent("kafka-bench-\(getpid()).addr")
    try? FileManager.default.removeItem(at: addressFile)
    let process = Process()
    process.executableURL = executable
    // Topics are created up front: the dev broker has no CreateTopics API and auto-creates
    // topics with 4 partitions only.
    process.arguments = [
        "--address-file", addressFile.path,
        "--topic", "bench_produce:\(options.producePartitions)",
        "--topic", "bench_consume:\(options.partitions)",
    ]
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    defer {
        process.terminate()
        process.waitUntilExit()
    }
    var address = ""
    let deadline = ContinuousClock.now + .seconds(10)
    while address.isEmpty && ContinuousClock.now < deadline {
        address = (try? String(contentsOf: addressFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if address.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
    }
    guard !address.isEmpty else { throw ValidationError("kafka-dev-broker did not start") }
    print("started kafka-dev-broker at \(address) (pid \(process.processIdentifier))")
    try await body(Broker(bootstrap: address, produceTopic: "bench_produce", consumeTopic: "bench_consume"))
}
