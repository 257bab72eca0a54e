import Foundation
import IntegrationSupport
import Kafka
import Logging
import Testing

/// The dev broker itself: data integrity, consumer groups and committed offsets over real
/// sockets, and its process behaviour (clean stop, clear errors).
@Suite("kafka-dev-broker", .serialized, .timeLimit(.minutes(2)))
struct DevBrokerTests {
    @Test("keys and headers survive; a two-member group splits partitions; a new member resumes at the committed offsets")
    func groupSplitsAndResumesAtCommittedOffsets() async throws {
        let topic = "dev_broker_group"
        let broker = try await KafkaDevBrokerProcess(topics: ["\(topic):6"])
        defer { broker.stop() }
        let allPartitions = Set((0..<6).map { TopicPartition(topic: topic, partition: Int32($0)) })

        // 60 messages over 12 keys, each with two headers (one binary).
        let producer = try KafkaTest.producer(broker.bootstrap)
        func message(_ index: Int) -> KafkaProducerMessage {
            KafkaProducerMessage(
                topic: topic,
                key: KafkaTest.bytes("event-\(index % 12)"),
                value: KafkaTest.bytes("update-\(index)"),
                headers: [KafkaHeader(key: "source", value: "test"), KafkaHeader(key: "seq", value: [0, 255, UInt8(index % 256)])]
            )
        }
        // Two members join together; each gets a non-empty, disjoint share of the partitions.
        // The messages are produced only once the group is stable, so no commit races the
        // rebalance that the second member's join causes (that is the owner's business, and
        // odds-processor treats such a failed commit as a replay).
        let group = TestInfrastructure.uniqueName("group")
        let memberA = try KafkaTest.consumer(broker.bootstrap, group: group, topics: [topic])
        let memberB = try KafkaTest.consumer(broker.bootstrap, group: group, topics: [topic])
        let deadline = ContinuousClock.now + .seconds(45)
        while ContinuousClock.now < deadline,
              memberA.assignment.isEmpty || memberB.assignment.isEmpty
                || memberA.assignment.union(memberB.assignment) != allPartitions {
            async let pollA = memberA.poll(maxMessages: 1, maxWait: .milliseconds(100))
            async let pollB = memberB.poll(maxMessages: 1, maxWait: .milliseconds(100))
            let early = try await pollA + pollB
            #expect(early.isEmpty, "nothing was produced yet")
        }

        let firstReports = try await KafkaTest.sendAll(producer, (0..<60).map(message))
        #expect(firstReports.allSatisfy { $0.isDelivered && $0.offset >= 0 })

        // Each member "processes" everything it gets but commits only messages 0..<40
        // (a prefix of every partition, since each partition holds them in send order).
        let counter = SeenCounter()
        async let seenA = Self.consumeCounting(memberA, counter: counter, commitBelow: 40)
        async let seenB = Self.consumeCounting(memberB, counter: counter, commitBelow: 40)
        let (messagesA, messagesB) = try await (seenA, seenB)

        let partitionsA = Set(messagesA.map(\.topicPartition))
        let partitionsB = Set(messagesB.map(\.topicPartition))
        #expect(!memberA.assignment.isEmpty && !memberB.assignment.isEmpty)
        #expect(memberA.assignment.isDisjoint(with: memberB.assignment))
        #expect(memberA.assignment.union(memberB.assignment) == allPartitions)
        #expect(partitionsA.isSubset(of: memberA.assignment))
        #expect(partitionsB.isSubset(of: memberB.assignment))

        // Everything arrived intact, exactly once.
        let all = messagesA + messagesB
        #expect(all.count == 60)
        #expect(Set(all.map(\.valueString)) == Set((0..<60).map { "update-\($0)" }))
        for received in all {
            let index = Int(received.valueString.dropFirst("update-".count))!
            #expect(received.keyString == "event-\(index % 12)")
            #expect(received.headers == [KafkaHeader(key: "source", value: "test"), KafkaHeader(key: "seq", value: [0, 255, UInt8(index % 256)])])
            #expect(received.timestampMilliseconds != nil)
        }

        try await memberA.close()
        try await memberB.close()

        // 20 more after both left; a new member must see exactly 40..<80.
        _ = try await KafkaTest.sendAll(producer, (60..<80).map(message))
        let memberC = try KafkaTest.consumer(broker.bootstrap, group: group, topics: [topic])
        let resumed = try await KafkaTest.consume(memberC) { $0.count >= 40 }
        let extra = try await KafkaTest.drain(memberC)
        let indexes = (resumed + extra).map { Int($0.valueString.dropFirst("update-".count))! }
        #expect(indexes.sorted() == Array(40..<80))
        try await memberC.close()
        await producer.shutdown()
    }

    /// Polls until the whole group has seen all 60 messages; commits only messages < `commitBelow`.
    static func consumeCounting(_ member: KafkaConsumer, counter: SeenCounter, commitBelow: Int) async throws -> [KafkaConsumerMessage] {
        var seen: [KafkaConsumerMessage] = []
        let deadline = ContinuousClock.now + .seconds(45)
        while ContinuousClock.now < deadline {
            let batch = try await member.poll(maxMessages: 100, maxWait: .milliseconds(100))
            seen += batch
            await counter.add(batch.count)
            let processed = batch.filter { Int($0.valueString.dropFirst("update-".count))! < commitBelow }
            try await member.commit(messages: processed)
            if await counter.total >= 60 { return seen }
        }
        throw KafkaTest.Timeout(description: "group saw \(await counter.total) of 60 messages")
    }

    @Test("a waiting fetch is answered as soon as data arrives, not when its wait ends (3 brokers behind the front)")
    func waitingFetchIsAnsweredWhenDataArrives() async throws {
        let topic = "dev_broker_long_poll"
        let broker = try await KafkaDevBrokerProcess(brokers: 3, topics: ["\(topic):6"])
        defer { broker.stop() }
        let allPartitions = Set((0..<6).map { TopicPartition(topic: topic, partition: Int32($0)) })
        // A 30 s wait: the bare mock would answer each empty fetch only after 30 s.
        let consumer = try KafkaTest.consumer(broker.bootstrap, group: TestInfrastructure.uniqueName("group"), topics: [topic]) {
            $0.fetchMaxWait = .seconds(30)
        }
        let joined = ContinuousClock.now + .seconds(45)
        while consumer.assignment != allPartitions, ContinuousClock.now < joined {
            let early = try await consumer.poll(maxMessages: 1, maxWait: .milliseconds(200))
            #expect(early.isEmpty, "nothing was produced yet")
        }
        #expect(consumer.assignment == allPartitions, "the consumer got every partition within 45 s")
        // One message per partition first: once each is consumed, every partition has a fetch
        // position and is in the fetches that wait next (a partition whose position was still
        // being looked up joins only the fetch after, which may be a whole wait later).
        let producer = try KafkaTest.producer(broker.bootstrap)
        let warmUp = try await KafkaTest.sendAll(producer, (0..<6).map {
            KafkaProducerMessage(topic: topic, partition: Int32($0), key: nil, value: KafkaTest.bytes("warm-up-\($0)"))
        })
        #expect(warmUp.allSatisfy { $0.isDelivered })
        let warmed = try await KafkaTest.consume(consumer, commit: false, timeout: .seconds(60)) { $0.count >= 6 }
        #expect(Set(warmed.map(\.partition)).count == 6)
        try await Task.sleep(for: .seconds(1))  // its fetches are waiting now

        let reports = try await KafkaTest.sendAll(producer, (0..<12).map {
            KafkaProducerMessage(topic: topic, key: KafkaTest.bytes("event-\($0)"), value: KafkaTest.bytes("update-\($0)"))
        })
        #expect(reports.allSatisfy { $0.isDelivered })
        // Well inside the 30 s wait (consume throws a Timeout naming the count otherwise).
        let received = try await KafkaTest.consume(consumer, commit: false, timeout: .seconds(15)) { $0.count >= 12 }
        #expect(Set(received.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<12).map { "update-\($0)" }))
        try await consumer.close()
    }

    @Test("records produced one request at a time are fetched whole and in order; the front answers those fetches from its copy")
    func fetchesAreAnsweredFromTheFrontsCopy() async throws {
        let topic = "dev_broker_front_log"
        let broker = try await KafkaDevBrokerProcess(topics: ["\(topic):3"])
        defer { broker.stop() }
        let producer = try KafkaTest.producer(broker.bootstrap)
        func messages(_ range: Range<Int>) -> [KafkaProducerMessage] {
            range.map { KafkaProducerMessage(topic: topic, partition: Int32($0 % 3), key: KafkaTest.bytes("k-\($0)"), value: KafkaTest.bytes("v-\($0)")) }
        }
        // Each send waits for its acknowledgement: one batch per request, the mock's worst case.
        let before = try await KafkaTest.sendAll(producer, messages(0..<90))
        #expect(before.allSatisfy { $0.isDelivered })
        let consumer = try KafkaTest.consumer(broker.bootstrap, group: TestInfrastructure.uniqueName("group"), topics: [topic]) {
            $0.fetchMaxWait = .seconds(5)
        }
        var received = try await KafkaTest.consume(consumer, commit: false) { $0.count >= 90 }
        // Produced while the consumer's fetches wait: answered when the data arrives.
        let after = try await KafkaTest.sendAll(producer, messages(90..<150))
        #expect(after.allSatisfy { $0.isDelivered })
        received += try await KafkaTest.consume(consumer, commit: false, timeout: .seconds(20)) { $0.count >= 60 }
        try await consumer.close()

        for partition in 0..<3 {
            let mine = received.filter { $0.partition == Int32(partition) }
            #expect(mine.map(\.offset) == (0..<50).map(Int64.init), "partition \(partition): every offset once, in order")
            let expected = stride(from: partition, to: 150, by: 3).map { "v-\($0)" }
            #expect(mine.map { String(decoding: $0.value, as: UTF8.self) } == expected, "partition \(partition): the records as produced")
            #expect(mine.map { $0.key.map { String(decoding: $0, as: UTF8.self) } } == expected.map { "k-" + $0.dropFirst(2) })
        }
        #expect(broker.process.stop(signal: SIGTERM) == 0)
        let stopped = try #require(broker.process.output.split(separator: "\n").first { $0.contains("kafka-dev-broker stopped") })
        let answered = stopped.split(separator: " ").first { $0.hasPrefix("fetches_answered_by_front=") }
            .flatMap { Int($0.dropFirst("fetches_answered_by_front=".count)) }
        #expect((answered ?? 0) > 0, "the front answered fetches itself: \(stopped)")
    }

    @Test("kafka-dev-broker exits 0 on SIGTERM and removes its address file")
    func stopsCleanlyOnSigterm() async throws {
        let addressFile = FileManager.default.temporaryDirectory.appendingPathComponent("kdb-\(UUID().uuidString).addr")
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent("kafka-dev-broker"),
            arguments: ["--address-file", addressFile.path, "--topic", "t:2"]
        )
        let ready = try await TestInfrastructure.waitUntil { FileManager.default.fileExists(atPath: addressFile.path) }
        #expect(ready, "address file never appeared: \(process.output)")
        let address = try String(contentsOf: addressFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(address.hasPrefix("127.0.0.1:"))
        #expect(await KafkaAdmin.isReachable(bootstrapServers: address, timeout: .seconds(5), logger: KafkaTest.logger))
        #expect(process.output.contains("kafka-dev-broker ready bootstrap=\(address) brokers=1 topics=t:2 long_poll=true front_log=true"))

        let status = process.stop(signal: SIGTERM)
        #expect(status == 0)
        #expect(!FileManager.default.fileExists(atPath: addressFile.path))
    }

    @Test("an invalid --topic gives one error line and a non-zero exit", arguments: ["x:abc", "x", ":3", "x:0"])
    func rejectsInvalidTopic(_ spec: String) async throws {
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent("kafka-dev-broker"),
            arguments: ["--topic", spec]
        )
        let status = await process.waitForExit(timeout: .seconds(20))
        #expect(status != nil, "still running after 20 s: \(process.output.suffix(2000))")
        #expect(status != 0)
        let lines = process.output.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "output: \(process.output)")
        #expect(lines.first?.contains("--topic") == true)
    }

    @Test("--brokers 0 is rejected with one line")
    func rejectsZeroBrokers() async throws {
        let process = try ManagedProcess(
            executable: try TestInfrastructure.binDirectory().appendingPathComponent("kafka-dev-broker"),
            arguments: ["--brokers", "0"]
        )
        let status = await process.waitForExit(timeout: .seconds(20))
        #expect(status != nil, "still running after 20 s: \(process.output.suffix(2000))")
        #expect(status != 0)
        #expect(process.output.split(separator: "\n").count == 1, "output: \(process.output)")
    }
}

actor SeenCounter {
    private(set) var total = 0
    func add(_ count: Int) { total += count }
}

/// A load-generating producer killed mid-stream, against the dev broker: a process suite (run
/// alone, after the others), since kafka-bench uses the whole machine while it runs.
@Suite("kafka-dev-broker with a producer killed mid-stream", .serialized, .timeLimit(.minutes(6)))
struct DevBrokerKilledProducerTests {
    /// A producer killed with Produce requests in flight: once the front cannot pass an answer
    /// on it stops reading the broker, whose later answers (requests it did write) are never
    /// copied, so the front's copy must not go on claiming those partitions' old end. (It did:
    /// a fetch at that end was answered "nothing more" for good, and a restarted odds-ingest
    /// never found the last messages its predecessor wrote. Without the fix this test failed
    /// in round 3 of 8 here; the race needs several answers in flight, so it has 8 rounds.)
    @Test("a producer killed with requests in flight: the newest message of every partition can still be read")
    func producerKilledMidRequest() async throws {
        let broker = try await KafkaDevBrokerProcess(topics: ["placeholder:1"])
        defer { broker.stop() }
        let logger = Logger(label: "dev-broker-test")
        var earlierTopics: Set<String> = []  // each kafka-bench run writes a topic of its own
        for round in 1...8 {
            let bench = try ManagedProcess(
                executable: try TestInfrastructure.binDirectory().appendingPathComponent("kafka-bench"),
                arguments: ["produce", "--brokers", broker.bootstrap, "--messages", "5000000", "--size", "64", "--produce-partitions", "4",
                            "--linger-ms", "0", "--batch-messages", "8"])
            // Killed mid-stream, once well over 20,000 messages were acknowledged.
            let admin = try KafkaAdmin(bootstrapServers: broker.bootstrap, clientID: "dev-broker-test", logger: logger)
            var topic: String?
            let streaming = try await TestInfrastructure.waitUntil(timeout: .seconds(60), interval: .milliseconds(200)) {
                guard let metadata = try? await admin.metadata(timeout: .seconds(2)) else { return false }
                topic = metadata.topics.keys.first { $0.hasPrefix("bench_produce") && !earlierTopics.contains($0) }
                guard let topic else { return false }
                let tail = try? await KafkaTail.lastMessages(brokers: broker.bootstrap, topics: [topic], perPartition: 1,
                                                            timeout: .seconds(5), logger: logger)
                return (tail ?? []).reduce(0) { $0 + Int($1.offset) } > 5_000
            }
            bench.stop(signal: SIGKILL)
            #expect(streaming, "round \(round): kafka-bench did not get 20,000 messages acknowledged within 60 s: \(bench.output.suffix(800))")
            guard streaming, let topic else { return }
            earlierTopics.insert(topic)
            do {
                // Reading from well before the end, as odds-ingest does: the front holds that
                // offset, and must not answer its stale end as the end.
                let newest = try await KafkaTail.lastMessages(brokers: broker.bootstrap, topics: [topic], perPartition: 64,
                                                              timeout: .seconds(20), logger: logger)
                #expect(Set(newest.map(\.partition)) == [0, 1, 2, 3], "round \(round): \(newest.count) messages")
            } catch {
                Issue.record("round \(round): the newest messages after the kill could not be read: \(error)")
            }
        }
    }
}
