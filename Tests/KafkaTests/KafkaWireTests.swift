import Testing
@testable import KafkaDevBroker

/// The wire pieces the dev broker's long-poll front reads and rewrites, on hand-built frames.
@Suite("kafka-dev-broker wire protocol (pure)")
struct KafkaWireTests {
    /// Big-endian frame building.
    struct Frame {
        var bytes: [UInt8] = []
        mutating func int16(_ value: Int16) { append(UInt64(UInt16(bitPattern: value)), 2) }
        mutating func int32(_ value: Int32) { append(UInt64(UInt32(bitPattern: value)), 4) }
        mutating func int64(_ value: Int64) { append(UInt64(bitPattern: value), 8) }
        mutating func string(_ text: String?) {
            guard let text else { return int16(-1) }
            int16(Int16(text.utf8.count))
            bytes += Array(text.utf8)
        }
        private mutating func append(_ value: UInt64, _ count: Int) {
            for index in (0..<count).reversed() { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
        }
    }

    static func fetchRequest(version: Int16, clientID: String?, maxWait: Int32) -> [UInt8] {
        var frame = Frame()
        frame.int16(1); frame.int16(version); frame.int32(77); frame.string(clientID)
        frame.int32(-1); frame.int32(maxWait); frame.int32(1); frame.int32(52_428_800)
        return frame.bytes
    }

    @Test("a Fetch request's header and max_wait_ms are found, with or without a client id; other versions are left alone")
    func fetchRequest() throws {
        for clientID in ["odds-processor", nil] {
            let frame = Self.fetchRequest(version: 11, clientID: clientID, maxWait: 500)
            let header = try #require(KafkaWire.requestHeader(frame))
            #expect(header.apiKey == 1 && header.apiVersion == 11 && header.correlationID == 77)
            let offset = try #require(KafkaWire.fetchMaxWaitOffset(header, frameSize: frame.count))
            #expect(KafkaWire.readInt32(frame, at: offset) == 500)
            var rewritten = frame
            KafkaWire.writeInt32(0, into: &rewritten, at: offset)
            #expect(KafkaWire.readInt32(rewritten, at: offset) == 0)
            #expect(rewritten.count == frame.count)
        }
        for version: Int16 in [3, 12] {
            let frame = Self.fetchRequest(version: version, clientID: "x", maxWait: 500)
            #expect(KafkaWire.fetchMaxWaitOffset(try #require(KafkaWire.requestHeader(frame)), frameSize: frame.count) == nil)
        }
        #expect(KafkaWire.requestHeader([0, 1, 0]) == nil)
    }

    /// A v11 Fetch response: one topic, one partition per entry of `records` (nil = null records).
    static func fetchResponse(records: [Int32?], partitionError: Int16 = 0, topError: Int16 = 0) -> [UInt8] {
        var frame = Frame()
        frame.int32(77); frame.int32(0); frame.int16(topError); frame.int32(0)
        frame.int32(1); frame.string("odds_updates"); frame.int32(Int32(records.count))
        for (index, size) in records.enumerated() {
            frame.int32(Int32(index)); frame.int16(partitionError)
            frame.int64(10); frame.int64(10); frame.int64(0)
            frame.int32(-1)  // no aborted transactions
            frame.int32(-1)  // preferred_read_replica
            if let size {
                frame.int32(size)
                frame.bytes += [UInt8](repeating: 0xAB, count: Int(size))
            } else {
                frame.int32(-1)
            }
        }
        return frame.bytes
    }

    @Test("a Fetch answer is empty only when no partition has records and nothing failed")
    func fetchResponseEmptiness() {
        #expect(KafkaWire.fetchResponseHasDataOrError(Self.fetchResponse(records: [0, nil, 0]), version: 11) == false)
        #expect(KafkaWire.fetchResponseHasDataOrError(Self.fetchResponse(records: [0, 61, 0]), version: 11) == true)
        #expect(KafkaWire.fetchResponseHasDataOrError(Self.fetchResponse(records: [0], partitionError: 1), version: 11) == true)
        #expect(KafkaWire.fetchResponseHasDataOrError(Self.fetchResponse(records: [], topError: 70), version: 11) == true)
        let cut = Array(Self.fetchResponse(records: [0, 0]).dropLast(3))
        #expect(KafkaWire.fetchResponseHasDataOrError(cut, version: 11) == nil, "a truncated answer is passed on, not held")
        #expect(KafkaWire.fetchResponseHasDataOrError(Self.fetchResponse(records: [0]), version: 12) == nil)
    }

    @Test("Metadata (v4) and FindCoordinator (v2) answers name the front's ports; nothing else changes")
    func brokerPortsRewritten() throws {
        var metadata = Frame()
        metadata.int32(5); metadata.int32(0); metadata.int32(2)
        metadata.int32(1); metadata.string("127.0.0.1"); metadata.int32(40001); metadata.string(nil)
        metadata.int32(2); metadata.string("127.0.0.1"); metadata.int32(40002); metadata.string("rack-b")
        metadata.string("cluster"); metadata.int32(1); metadata.int32(0)
        var frame = metadata.bytes
        let map: (Int32) -> Int32 = { $0 == 40001 ? 50001 : $0 == 40002 ? 50002 : $0 }
        #expect(KafkaWire.rewriteMetadataPorts(&frame, version: 4, map: map))
        var expected = Frame()
        expected.int32(5); expected.int32(0); expected.int32(2)
        expected.int32(1); expected.string("127.0.0.1"); expected.int32(50001); expected.string(nil)
        expected.int32(2); expected.string("127.0.0.1"); expected.int32(50002); expected.string("rack-b")
        expected.string("cluster"); expected.int32(1); expected.int32(0)
        #expect(frame == expected.bytes)

        var coordinator = Frame()
        coordinator.int32(6); coordinator.int32(0); coordinator.int16(0); coordinator.string(nil)
        coordinator.int32(2); coordinator.string("127.0.0.1"); coordinator.int32(40002)
        var answer = coordinator.bytes
        #expect(KafkaWire.rewriteCoordinatorPort(&answer, version: 2, map: map))
        #expect(KafkaWire.readInt32(answer, at: answer.count - 4) == 50002)
        var short = Array(coordinator.bytes.dropLast(2))
        #expect(!KafkaWire.rewriteCoordinatorPort(&short, version: 2, map: map))
        #expect(short == Array(coordinator.bytes.dropLast(2)), "an unreadable answer is left as it was")
    }

    @Test("a Produce request's acks are read (acks=0 gets no answer from the broker)")
    func produceAcks() throws {
        for (acks, transactionalID) in [(Int16(-1), String?.none), (0, "tx-1")] {
            var frame = Frame()
            frame.int16(0); frame.int16(7); frame.int32(9); frame.string("odds-ingest")
            frame.string(transactionalID); frame.int16(acks); frame.int32(30_000)
            let header = try #require(KafkaWire.requestHeader(frame.bytes))
            #expect(KafkaWire.produceAcks(frame.bytes, header: header) == acks)
        }
    }
}

extension KafkaWireTests {
    @Test("the topics of a Fetch (v11) and a Produce (v7) request are read, so a produce wakes only fetches of its topics")
    func requestTopics() throws {
        var fetch = Frame()
        fetch.int16(1); fetch.int16(11); fetch.int32(3); fetch.string("odds-processor")
        fetch.int32(-1); fetch.int32(500); fetch.int32(1); fetch.int32(52_428_800); fetch.bytes.append(0)
        fetch.int32(0); fetch.int32(-1)  // session id, epoch
        fetch.int32(2)
        for (topic, partitions) in [("odds_updates", 3), ("odds_feed_status", 1)] {
            fetch.string(topic); fetch.int32(Int32(partitions))
            for partition in 0..<partitions {
                fetch.int32(Int32(partition)); fetch.int32(-1); fetch.int64(42); fetch.int64(-1); fetch.int32(1_048_576)
            }
        }
        fetch.int32(0); fetch.string("")  // forgotten topics, rack id
        let fetchHeader = try #require(KafkaWire.requestHeader(fetch.bytes))
        #expect(KafkaWire.fetchTopics(fetch.bytes, header: fetchHeader) == ["odds_updates", "odds_feed_status"])
        #expect(KafkaWire.fetchTopics(Array(fetch.bytes.prefix(60)), header: fetchHeader) == nil)

        var produce = Frame()
        produce.int16(0); produce.int16(7); produce.int32(4); produce.string("odds-ingest")
        produce.string(nil); produce.int16(-1); produce.int32(30_000)
        produce.int32(1); produce.string("odds_updates"); produce.int32(2)
        produce.int32(0); produce.int32(5); produce.bytes += [1, 2, 3, 4, 5]
        produce.int32(7); produce.int32(-1)
        let produceHeader = try #require(KafkaWire.requestHeader(produce.bytes))
        #expect(KafkaWire.produceTopics(produce.bytes, header: produceHeader) == ["odds_updates"])
        #expect(KafkaWire.produceTopics(Array(produce.bytes.dropLast(6)), header: produceHeader) == nil)
    }
}
