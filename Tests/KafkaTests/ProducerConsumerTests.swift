import Foundation
import IntegrationSupport
import Kafka
import Testing

/// Producer and consumer behaviour against the shared dev broker (`make test` starts it).
/// Every test uses its own topic (auto-created by the broker with 4 partitions) and group.
@Suite("Kafka producer and consumer", .serialized, .timeLimit(.minutes(3)))
struct ProducerConsumerTests {
    let brokers: String

    init() throws {
        brokers = try TestInfrastructure.kafkaBrokers()
    }

    @Test("round trip keeps key, value, headers; send reports partition and offset")
    func roundTrip() async throws {
        let topic = TestInfrastructure.uniqueName("roundtrip")
        let producer = try KafkaTest.producer(brokers)
        let sent = [
            KafkaProducerMessage(topic: topic, key: "MATCH_001", value: #"{"event_id":"MATCH_001"}"#, headers: [KafkaHeader(key: "error", value: "none"), KafkaHeader(key: "source", value: "ingest")]),
            KafkaProducerMessage(topic: topic, key: KafkaTest.bytes("binary"), value: [0, 1, 2, 255], headers: [KafkaHeader(key: "raw", value: [255, 0])]),
            KafkaProducerMessage(topic: topic, key: nil as [UInt8]?, value: KafkaTest.bytes("no key, no headers")),
        ]
        let reports = try await KafkaTest.sendAll(producer, sent)
        for report in reports {
            #expect(report.isDelivered)
            #expect(report.topic == topic)
            #expect((0..<4).contains(report.partition))
            #expect(report.offset >= 0)
            #expect(report.id == nil)
        }
        #expect(reports[0].key == KafkaTest.bytes("MATCH_001"))

        let consumer = try KafkaTest.consumer(brokers, group: TestInfrastructure.uniqueName("g"), topics: [topic])
        let received = try await KafkaTest.consume(consumer) { $0.count >= 3 }
        #expect(received.count == 3)
        for (message, report) in zip(sent, reports) {
            let match = try #require(received.first { $0.partition == report.partition && $0.offset == report.offset })
            #expect(match.topic == topic)
            #expect(match.key == message.key)
            #expect(match.value == message.value)
            #expect(match.headers == message.headers)
            let timestamp = try #require(match.timestampMilliseconds)
            #expect(abs(Double(timestamp) / 1000 - Date().timeIntervalSince1970) < 60)
        }
        try await consumer.close()
        await producer.shutdown()
        await #expect(throws: KafkaError.self) { _ = try await producer.send(sent[0]) }
    }

    @Test("per-key order holds over 10k messages")
    func perKeyOrdering() async throws {
        let topic = TestInfrastructure.uniqueName("ordering")
        let producer = try KafkaTest.producer(brokers)
        let keys = 50
        let messages = (0..<10_000).map { index in
            KafkaProducerMessage(topic: topic, key: "key-\(index % keys)", value: "\(index / keys)")
        }
        let reports = try await KafkaTest.enqueueAll(producer, messages)
        #expect(reports.count == 10_000)
        #expect(reports.allSatisfy { $0.isDelivered })
        #expect(Set(reports.compactMap(\.id)).count == 10_000)

        let consumer = try KafkaTest.consumer(brokers, group: TestInfrastructure.uniqueName("g"), topics: [topic])
        let received = try await KafkaTest.consume(consumer) { $0.count >= 10_000 }
        #expect(received.count == 10_000)
        var sequences: [String: [Int]] = [:]
        var partitionOfKey: [String: Int32] = [:]
        for message in received {
            let key = message.keyString!
            sequences[key, default: []].append(Int(message.valueString)!)
            if let known = partitionOfKey[key] { #expect(known == message.partition) }
            partitionOfKey[key] = message.partition
        }
        #expect(sequences.count == keys)
        for (key, sequence) in sequences {
            #expect(sequence == Array(0..<(10_000 / keys)), "key \(key) out of order")
        }
        try await consumer.close()
        await producer.shutdown()
    }

    @Test("after commit and restart the consumer resumes with no loss and no replay")
    func resumeAfterRestart() async throws {
        let topic = TestInfrastructure.uniqueName("resume")
        let group = TestInfrastructure.uniqueName("g")
        let producer = try KafkaTest.producer(brokers)
        _ = try await KafkaTest.enqueueAll(producer, (0..<300).map {
            KafkaProducerMessage(topic: topic, key: "k\($0 % 7)", value: "\($0)")
        })

        // First run: process and commit exactly the first 120 messages received.
        let first = try KafkaTest.consumer(brokers, group: group, topics: [topic])
        var processed: [KafkaConsumerMessage] = []
        while processed.count < 120 {
            let batch = try await first.poll(maxMessages: 120 - processed.count, maxWait: .milliseconds(200))
            processed += batch
            try await first.commit(messages: batch)
        }
        let committed = try await first.committedOffsets(for: Array(first.assignment))
        #expect(committed.reduce(0) { $0 + max(0, $1.offset) } == 120)
        try await first.close()
        var events: [KafkaRebalanceEvent] = []
        for await event in first.rebalanceEvents { events.append(event) }  // finished by close()
        let allPartitions = (0..<4).map { TopicPartition(topic: topic, partition: Int32($0)) }
        #expect(events.first == .assigned(allPartitions))
        #expect(events.last == .revoked(allPartitions))
        #expect(first.assignment.isEmpty)

        // Second run: exactly the other 180.
        let second = try KafkaTest.consumer(brokers, group: group, topics: [topic])
        let rest = try await KafkaTest.consume(second) { $0.count >= 180 }
        let extra = try await KafkaTest.drain(second)
        #expect(extra.isEmpty)
        let firstIDs = Set(processed.map(\.id))
        let restIDs = Set(rest.map(\.id))
        #expect(rest.count == 180)
        #expect(restIDs.count == 180)
        #expect(firstIDs.isDisjoint(with: restIDs))
        #expect(Set((processed + rest).map(\.valueString)) == Set((0..<300).map(String.init)))
        try await second.close()
        await producer.shutdown()
    }

    @Test("stored offsets: committed every interval or on demand, never before they are stored, and on close")
    func storedOffsetsAreCommitted() async throws {
        let topic = TestInfrastructure.uniqueName("stored")
        let group = TestInfrastructure.uniqueName("g")
        let producer = try KafkaTest.producer(brokers)
        _ = try await KafkaTest.enqueueAll(producer, (0..<200).map { KafkaProducerMessage(topic: topic, key: "k\($0 % 9)", value: "\($0)") })

        let plain = try KafkaTest.consumer(brokers, group: TestInfrastructure.uniqueName("g"), topics: [topic])
        #expect(throws: KafkaError.self, "storing needs autoCommitInterval") {
            try plain.storeOffsets([TopicPartitionOffset(topic: topic, partition: 0, offset: 1)])
        }
        try await plain.close()

        // Every 100 ms: what was handed out is not committed, what was stored is.
        let first = try KafkaTest.consumer(brokers, group: group, topics: [topic]) { $0.autoCommitInterval = .milliseconds(100) }
        let received = try await KafkaTest.consume(first, commit: false) { $0.count >= 200 }
        let partitions = Array(first.assignment)
        try await Task.sleep(for: .milliseconds(500))  // five intervals
        let before = try await first.committedOffsets(for: partitions)
        #expect(before.allSatisfy { $0.offset < 0 }, "handed out but never stored, yet committed: \(before)")
        let firstHalf = received.filter { Int($0.valueString)! < 100 }
        let stored = TopicPartitionOffset.nextOffsets(after: firstHalf)
        try first.storeOffsets(stored)
        let committedByTimer = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) {
            Set(try await first.committedOffsets(for: stored.map(\.topicPartition))) == Set(stored)
        }
        #expect(committedByTimer, "waited 10 s for the interval's commit of \(stored)")

        // A commit of the stored offsets on demand, long before the interval (60 s) is up.
        try await first.close()
        let eager = try KafkaTest.consumer(brokers, group: group, topics: [topic]) { $0.autoCommitInterval = .seconds(60) }
        var batch: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now + .seconds(45)
        while batch.isEmpty && ContinuousClock.now < deadline {
            batch = try await eager.poll(maxMessages: 10, maxWait: .milliseconds(100))  // leaves most for the close below
        }
        try #require(!batch.isEmpty, "waited 45 s for the next member's first batch")
        let next = TopicPartitionOffset.nextOffsets(after: batch)
        try eager.storeOffsets(next)
        try eager.commitStoredAsync()
        let committedOnDemand = try await TestInfrastructure.waitUntil(timeout: .seconds(10)) {
            Set(try await eager.committedOffsets(for: next.map(\.topicPartition))) == Set(next)
        }
        #expect(committedOnDemand, "waited 10 s for commitStoredAsync to commit \(next)")
        try await eager.close()
        let afterEager = Set(batch.map(\.valueString))

        // The rest is stored just before close: only the close can commit it (interval of 60 s).
        let second = try KafkaTest.consumer(brokers, group: group, topics: [topic]) { $0.autoCommitInterval = .seconds(60) }
        let expected = Set((100..<200).map(String.init)).subtracting(afterEager)
        let replayed = try await KafkaTest.consume(second, commit: false) { $0.count >= expected.count }
        #expect(Set(replayed.map(\.valueString)) == expected, "resumes after what was stored")
        try second.storeOffsets(TopicPartitionOffset.nextOffsets(after: replayed))
        try await second.close()
        // One more message shows the next member is assigned and reading.
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "k0", value: "200"))
        let third = try KafkaTest.consumer(brokers, group: group, topics: [topic]) { $0.autoCommitInterval = .seconds(60) }
        let after = try await KafkaTest.consume(third, commit: false) { $0.contains { $0.valueString == "200" } }
        let extra = try await KafkaTest.drain(third, quiet: .milliseconds(500))
        #expect((after + extra).map(\.valueString) == ["200"], "close committed every stored offset; the next member read \((after + extra).count) message(s)")
        try await third.close()
        await producer.shutdown()
    }

    // Eager is the protocol odds-processor uses. Cooperative-sticky also works, but on the mock
    // broker under a loaded 2-core CI machine its incremental rebalance can outlast this test's
    // settle window, so it is not part of the suite.
    @Test("two consumers in one group see every message exactly once", arguments: [
        KafkaConsumerConfiguration.RebalanceProtocol.eager,
    ])
    func twoConsumersExactlyOnce(_ rebalanceProtocol: KafkaConsumerConfiguration.RebalanceProtocol) async throws {
        let topic = TestInfrastructure.uniqueName("split")
        let group = TestInfrastructure.uniqueName("g")
        let producer = try KafkaTest.producer(brokers)
        // Create the topic (auto-creation on first produce), then let the group settle.
        _ = try await producer.send(KafkaProducerMessage(topic: topic, key: "warmup", value: "-1"))

        let memberA = try KafkaTest.consumer(brokers, group: group, topics: [topic]) { $0.rebalanceProtocol = rebalanceProtocol }
        let memberB = try KafkaTest.consumer(brokers, group: group, topics: [topic]) { $0.rebalanceProtocol = rebalanceProtocol }
        let stop = StopFlag()
        async let seenA = Self.consumeUntilStopped(memberA, stop: stop)
        async let seenB = Self.consumeUntilStopped(memberB, stop: stop)

        let settled = try await TestInfrastructure.waitUntil(timeout: .seconds(90)) {
            !memberA.assignment.isEmpty && !memberB.assignment.isEmpty && memberA.assignment.count + memberB.assignment.count == 4
        }
        #expect(settled)
        _ = try await KafkaTest.enqueueAll(producer, (0..<2_000).map {
            KafkaProducerMessage(topic: topic, key: "event-\($0 % 40)", value: "\($0)")
        })
        let counted = try await TestInfrastructure.waitUntil(timeout: .seconds(60)) { await stop.count >= 2_001 }
        #expect(counted)
        try await Task.sleep(for: .milliseconds(500))  // anything extra would be a duplicate
        await stop.stop()
        let (messagesA, messagesB) = try await (seenA, seenB)

        #expect(!messagesA.isEmpty && !messagesB.isEmpty)
        #expect(memberA.assignment.isDisjoint(with: memberB.assignment))
        let all = messagesA + messagesB
        // Only the warm-up message, read while the group was still forming (its commit may lose
        // the race with the second member's join), may be delivered twice; every message
        // produced after the group settled arrives exactly once.
        let afterSettling = all.filter { $0.valueString != "-1" }
        #expect(afterSettling.count == 2_000)
        #expect(Set(afterSettling.map(\.id)).count == 2_000)
        #expect(Set(all.map(\.id)).count == 2_001)
        #expect(Set(all.map(\.valueString)) == Set((-1..<2_000).map(String.init)))
        try await memberA.close()
        try await memberB.close()
        await producer.shutdown()
    }

    static func consumeUntilStopped(_ consumer: KafkaConsumer, stop: StopFlag) async throws -> [KafkaConsumerMessage] {
        var seen: [KafkaConsumerMessage] = []
        while await !stop.isStopped {
            let batch = try await consumer.poll(maxMessages: 200, maxWait: .milliseconds(50))
            seen += batch
            await stop.add(batch.count)
            do {
                try await consumer.commit(messages: batch)  // commit after processing
            } catch let error as KafkaError where error.code == .rebalanceInProgress || error.code == .illegalGeneration {
                // A commit that races a rebalance fails; the partition's next owner replays it.
                // The next poll serves the rebalance.
                _ = error
            }
        }
        return seen
    }

    @Test("a full local queue makes enqueue wait; nothing is lost")
    func backpressureOnFullQueue() async throws {
        let topic = TestInfrastructure.uniqueName("backpressure")
        let producer = try KafkaTest.producer(brokers) {
            $0.queueMaxMessages = 10        // librdkafka's queue.buffering.max.messages
            $0.maxInFlightMessages = 100_000  // so librdkafka's limit is the one that bites
        }
        let count = 3_000
        let reports = try await KafkaTest.enqueueAll(producer, (0..<count).map {
            KafkaProducerMessage(topic: topic, key: "k\($0 % 13)", value: "\($0)")
        })
        #expect(reports.count == count)
        #expect(reports.allSatisfy { $0.isDelivered })
        #expect(Set(reports.compactMap(\.id)).count == count)
        #expect(producer.queueFullWaitCount > 0, "the tiny queue never filled up")

        let consumer = try KafkaTest.consumer(brokers, group: TestInfrastructure.uniqueName("g"), topics: [topic])
        let received = try await KafkaTest.consume(consumer) { $0.count >= count }
        #expect(Set(received.map(\.valueString)) == Set((0..<count).map(String.init)))
        try await consumer.close()
        await producer.shutdown()
    }

    @Test("unread delivery reports bound enqueue (maxInFlightMessages)")
    func inFlightBound() async throws {
        let topic = TestInfrastructure.uniqueName("bounded")
        let producer = try KafkaTest.producer(brokers) { $0.maxInFlightMessages = 5 }
        for index in 0..<5 { try await producer.enqueue(KafkaProducerMessage(topic: topic, key: nil, value: "\(index)")) }
        let sixthDone = StopFlag()
        let sixth = Task {
            let id = try await producer.enqueue(KafkaProducerMessage(topic: topic, key: nil, value: "5"))
            await sixthDone.stop()
            return id
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(await !sixthDone.isStopped, "enqueue did not wait for a free in-flight slot")

        var iterator = producer.deliveryReports.makeAsyncIterator()
        let firstReport = try #require(await iterator.next())
        #expect(firstReport.isDelivered)
        let sixthID = try await sixth.value
        #expect(sixthID.rawValue == 5)
        for _ in 0..<5 { #expect(await iterator.next()?.isDelivered == true) }
        await producer.shutdown()
        #expect(await iterator.next() == nil)
    }

    @Test("lag is high watermark minus position")
    func consumerLag() async throws {
        let topic = TestInfrastructure.uniqueName("lag")
        let producer = try KafkaTest.producer(brokers)
        _ = try await KafkaTest.enqueueAll(producer, (0..<100).map { KafkaProducerMessage(topic: topic, key: "k\($0 % 9)", value: "\($0)") })
        let consumer = try KafkaTest.consumer(brokers, group: TestInfrastructure.uniqueName("g"), topics: [topic])
        var consumed = 0
        while consumed < 30 {
            consumed += try await consumer.poll(maxMessages: 30 - consumed, maxWait: .milliseconds(200)).count
        }
        var lag: [TopicPartition: Int64] = [:]
        let settled = try await TestInfrastructure.waitUntil {
            lag = try await consumer.lag()
            return lag.count == 4 && lag.values.reduce(0, +) == 70
        }
        #expect(settled, "lag: \(lag)")
        try await consumer.close()
        await producer.shutdown()
    }

    @Test("pause stops delivery of a partition until resume")
    func pauseAndResume() async throws {
        let topic = TestInfrastructure.uniqueName("pause")
        let producer = try KafkaTest.producer(brokers)
        let consumer = try KafkaTest.consumer(brokers, group: TestInfrastructure.uniqueName("g"), topics: [topic])
        _ = try await producer.send(KafkaProducerMessage(topic: topic, partition: 0, key: "a", value: "warmup"))
        _ = try await KafkaTest.consume(consumer) { $0.count >= 1 }

        let paused = TopicPartition(topic: topic, partition: 0)
        try consumer.pause([paused])
        _ = try await KafkaTest.enqueueAll(producer, (0..<20).map { KafkaProducerMessage(topic: topic, partition: Int32($0 % 2), key: nil, value: "\($0)") })
        let whilePaused = try await KafkaTest.consume(consumer) { $0.count >= 10 }
        let more = try await KafkaTest.drain(consumer, quiet: .milliseconds(500))
        #expect((whilePaused + more).allSatisfy { $0.partition == 1 })
        try consumer.resume([paused])
        let afterResume = try await KafkaTest.consume(consumer) { $0.count >= 10 }
        #expect(afterResume.allSatisfy { $0.partition == 0 })
        try await consumer.close()
        await producer.shutdown()
    }
}

actor StopFlag {
    private(set) var isStopped = false
    private(set) var count = 0
    func stop() { isStopped = true }
    func add(_ value: Int) { count += value }
}
