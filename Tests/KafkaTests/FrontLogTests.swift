import Testing
@testable import KafkaDevBroker

/// The front's copy of each partition's log (`FrontLog`) and the wire pieces it is built from,
/// on hand-built frames.
@Suite("kafka-dev-broker front log (pure)")
struct FrontLogTests {
    typealias Frame = KafkaWireTests.Frame
    static let key = FrontLog.Key(brokerPort: 9092, topic: "odds_updates", partition: 3)

    /// A v2 record batch as a producer sends it (base offset 0, no leader epoch) with `records`
    /// records and `payload` bytes after the 61-byte header.
    static func batch(records: Int32, payload: Int = 10, fill: UInt8 = 0xCD) -> [UInt8] {
        var frame = Frame()
        frame.int64(0); frame.int32(Int32(49 + payload)); frame.int32(-1); frame.bytes.append(2)
        frame.int32(0x1234_5678); frame.int16(0); frame.int32(records - 1)
        frame.int64(1_700_000_000_000); frame.int64(1_700_000_000_000)
        frame.int64(42); frame.int16(0); frame.int32(7); frame.int32(records)
        frame.bytes += [UInt8](repeating: fill, count: payload)
        return frame.bytes
    }

    static func placed(_ batch: [UInt8], at offset: Int64) -> [UInt8] {
        KafkaWire.placed(batch, at: offset, leaderEpoch: 0)
    }

    static func heldBatches(_ read: FrontLog.Read) -> (highWatermark: Int64, logStart: Int64, batches: [[UInt8]])? {
        guard case .held(let highWatermark, let logStart, let batches) = read else { return nil }
        return (highWatermark, logStart, batches)
    }

    @Test("a record batch is read and placed as the broker stores it: offset and epoch written, nothing else changed")
    func recordBatchPlacement() throws {
        let batch = Self.batch(records: 3)
        let parsed = try #require(KafkaWire.recordBatches(batch))
        #expect(parsed == [KafkaWire.RecordBatch(baseOffset: 0, leaderEpoch: -1, recordCount: 3, size: 71)])
        let placed = KafkaWire.placed(batch, at: 1_000, leaderEpoch: 0)
        #expect(try #require(KafkaWire.recordBatches(placed)).first?.baseOffset == 1_000)
        #expect(try #require(KafkaWire.recordBatches(placed)).first?.leaderEpoch == 0)
        #expect(placed[16...] == batch[16...], "the magic byte, CRC and records are untouched")
        #expect(KafkaWire.recordBatches(batch + batch)?.count == 2)
        #expect(KafkaWire.recordBatches(Array(batch.dropLast())) == nil, "a batch cut short is not a batch")
        var oldFormat = batch
        oldFormat[16] = 1
        #expect(KafkaWire.recordBatches(oldFormat) == nil)
    }

    @Test("produced batches are held in order and read from the one holding the offset, within the byte budget")
    func producedBatchesAreRead() throws {
        let log = FrontLog()
        let first = Self.batch(records: 2, fill: 1), second = Self.batch(records: 1, fill: 2), third = Self.batch(records: 4, fill: 3)
        log.produced(Self.key, baseOffset: 10, records: first)
        log.produced(Self.key, baseOffset: 12, records: second)
        log.produced(Self.key, baseOffset: 13, records: third)

        let all = try #require(Self.heldBatches(log.read(Self.key, offset: 11, maxBytes: 1 << 20, firstInAnswer: true)))
        #expect(all.highWatermark == 17 && all.logStart == 10)
        #expect(all.batches == [Self.placed(first, at: 10), Self.placed(second, at: 12), Self.placed(third, at: 13)])

        let budget = try #require(Self.heldBatches(log.read(Self.key, offset: 12, maxBytes: second.count + 1, firstInAnswer: false)))
        #expect(budget.batches == [Self.placed(second, at: 12)], "the budget stops before a batch that does not fit")
        let none = try #require(Self.heldBatches(log.read(Self.key, offset: 13, maxBytes: 1, firstInAnswer: false)))
        #expect(none.batches.isEmpty)
        let oversized = try #require(Self.heldBatches(log.read(Self.key, offset: 13, maxBytes: 1, firstInAnswer: true)))
        #expect(oversized.batches.count == 1, "the first batch of an answer is given even when larger than the budget")

        let atEnd = try #require(Self.heldBatches(log.read(Self.key, offset: 17, maxBytes: 1 << 20, firstInAnswer: true)))
        #expect(atEnd.batches.isEmpty && atEnd.highWatermark == 17)
        #expect(Self.heldBatches(log.read(Self.key, offset: 9, maxBytes: 1 << 20, firstInAnswer: true)) == nil, "older than held: ask the broker")
        #expect(Self.heldBatches(log.read(Self.key, offset: 18, maxBytes: 1 << 20, firstInAnswer: true)) == nil, "past the end: ask the broker")
        let other = FrontLog.Key(brokerPort: 9093, topic: "odds_updates", partition: 3)
        #expect(Self.heldBatches(log.read(other, offset: 10, maxBytes: 1 << 20, firstInAnswer: true)) == nil, "held per broker")
    }

    @Test("answers seen out of order never leave a hole: an earlier offset is ignored, a later one starts the copy again")
    func outOfOrderAnswers() throws {
        let log = FrontLog()
        log.produced(Self.key, baseOffset: 5, records: Self.batch(records: 1))
        log.produced(Self.key, baseOffset: 7, records: Self.batch(records: 1))  // 6's answer not seen yet
        log.produced(Self.key, baseOffset: 6, records: Self.batch(records: 1))
        let held = try #require(Self.heldBatches(log.read(Self.key, offset: 7, maxBytes: 1 << 20, firstInAnswer: true)))
        #expect(held.logStart == 7 && held.highWatermark == 8 && held.batches.count == 1)
        #expect(Self.heldBatches(log.read(Self.key, offset: 6, maxBytes: 1 << 20, firstInAnswer: true)) == nil)
        log.produced(Self.key, baseOffset: -1, records: Self.batch(records: 1))  // a duplicate not written again
        #expect(try #require(Self.heldBatches(log.read(Self.key, offset: 8, maxBytes: 1, firstInAnswer: true))).highWatermark == 8)
        log.produced(Self.key, baseOffset: 8, records: Self.batch(records: 1) + Self.batch(records: 1))
        #expect(Self.heldBatches(log.read(Self.key, offset: 8, maxBytes: 1, firstInAnswer: true)) == nil,
                "a request of two batches is not copied, and the partition is no longer held")
    }

    @Test("the copy stays within its bound by dropping the oldest batches")
    func boundDropsOldest() throws {
        let batch = Self.batch(records: 1, payload: 39)  // 100 bytes
        let log = FrontLog(boundPerPartition: 1_000)
        for offset in 0..<30 { log.produced(Self.key, baseOffset: Int64(offset), records: batch) }
        let held = try #require(Self.heldBatches(log.read(Self.key, offset: 25, maxBytes: 1 << 20, firstInAnswer: true)))
        #expect(held.logStart == 20 && held.highWatermark == 30 && held.batches.count == 5)
        #expect(Self.heldBatches(log.read(Self.key, offset: 19, maxBytes: 1 << 20, firstInAnswer: true)) == nil)
    }

    @Test("transactional and unanswered writes are never answered from the copy")
    func untrackedWrites() {
        let log = FrontLog()
        log.produced(Self.key, baseOffset: 0, records: Self.batch(records: 1))
        log.markTransactional(Self.key)
        log.produced(Self.key, baseOffset: 1, records: Self.batch(records: 1))
        #expect(Self.heldBatches(log.read(Self.key, offset: 1, maxBytes: 1 << 20, firstInAnswer: true)) == nil)
        let other = FrontLog.Key(brokerPort: 9092, topic: "odds_feed_status", partition: 0)
        log.produced(other, baseOffset: 0, records: Self.batch(records: 1))
        log.forget(other)
        #expect(Self.heldBatches(log.read(other, offset: 0, maxBytes: 1 << 20, firstInAnswer: true)) == nil)
        log.produced(other, baseOffset: 1, records: Self.batch(records: 1))
        log.forgetAll(brokerPort: 9092)
        #expect(Self.heldBatches(log.read(other, offset: 1, maxBytes: 1 << 20, firstInAnswer: true)) == nil)
    }

    @Test("a broker's fetch answer is learned only when it reaches the log's end; a newer end means a write was missed")
    func learnedFromFetchAnswers() throws {
        let log = FrontLog()
        let empty = KafkaWire.FetchedPartition(topic: "odds_updates", partition: 3, errorCode: 0, highWatermark: 40, records: [])
        log.fetched(Self.key, empty)
        let atEnd = try #require(Self.heldBatches(log.read(Self.key, offset: 40, maxBytes: 1 << 20, firstInAnswer: true)))
        #expect(atEnd.batches.isEmpty && atEnd.highWatermark == 40)
        log.produced(Self.key, baseOffset: 40, records: Self.batch(records: 2))
        #expect(try #require(Self.heldBatches(log.read(Self.key, offset: 40, maxBytes: 1 << 20, firstInAnswer: true))).highWatermark == 42)
        log.fetched(Self.key, .init(topic: "odds_updates", partition: 3, errorCode: 0, highWatermark: 41, records: []))
        #expect(Self.heldBatches(log.read(Self.key, offset: 42, maxBytes: 1, firstInAnswer: true)) != nil, "an older answer changes nothing")
        log.fetched(Self.key, .init(topic: "odds_updates", partition: 3, errorCode: 0, highWatermark: 43, records: []))
        #expect(Self.heldBatches(log.read(Self.key, offset: 42, maxBytes: 1, firstInAnswer: true)) == nil)

        let records = Self.placed(Self.batch(records: 2), at: 50) + Self.placed(Self.batch(records: 1), at: 52)
        let other = FrontLog.Key(brokerPort: 9092, topic: "odds_updates", partition: 4)
        log.fetched(other, .init(topic: "odds_updates", partition: 4, errorCode: 0, highWatermark: 60, records: records))
        #expect(Self.heldBatches(log.read(other, offset: 52, maxBytes: 1 << 20, firstInAnswer: true)) == nil, "records up to 53 of 60: not whole")
        log.fetched(other, .init(topic: "odds_updates", partition: 4, errorCode: 6, highWatermark: 53, records: []))
        #expect(Self.heldBatches(log.read(other, offset: 53, maxBytes: 1 << 20, firstInAnswer: true)) == nil, "an error answer teaches nothing")
        log.fetched(other, .init(topic: "odds_updates", partition: 4, errorCode: 0, highWatermark: 53, records: records))
        let learned = try #require(Self.heldBatches(log.read(other, offset: 51, maxBytes: 1 << 20, firstInAnswer: true)))
        #expect(learned.logStart == 50 && learned.highWatermark == 53 && learned.batches.flatMap { $0 } == records)
    }
}

extension FrontLogTests {
    static func fetchRequest(version: Int16 = 11, offsets: [(topic: String, partition: Int32, offset: Int64)]) -> [UInt8] {
        var frame = Frame()
        frame.int16(1); frame.int16(version); frame.int32(31); frame.string("odds-processor")
        frame.int32(-1); frame.int32(500); frame.int32(1); frame.int32(52_428_800); frame.bytes.append(1)
        if version >= 7 { frame.int32(0); frame.int32(-1) }
        let topics = Dictionary(grouping: offsets, by: \.topic).sorted { $0.key < $1.key }
        frame.int32(Int32(topics.count))
        for (topic, partitions) in topics {
            frame.string(topic); frame.int32(Int32(partitions.count))
            for partition in partitions {
                frame.int32(partition.partition)
                if version >= 9 { frame.int32(-1) }
                frame.int64(partition.offset)
                if version >= 5 { frame.int64(-1) }
                frame.int32(1_048_576)
            }
        }
        if version >= 7 { frame.int32(0) }
        if version >= 11 { frame.string("") }
        return frame.bytes
    }

    @Test("a Fetch request's offsets are read (v4, v7, v11); a fetch session or a replica is not a plain consumer fetch")
    func fetchRequestOffsets() throws {
        for version: Int16 in [4, 7, 11] {
            let frame = Self.fetchRequest(version: version, offsets: [("odds_updates", 0, 17), ("odds_updates", 5, 3), ("odds_feed_status", 0, 0)])
            let header = try #require(KafkaWire.requestHeader(frame))
            let request = try #require(KafkaWire.fetchRequest(frame, header: header))
            #expect(request.maxWaitMs == 500 && request.minBytes == 1 && request.maxBytes == 52_428_800)
            #expect(request.topics.map(\.name) == ["odds_feed_status", "odds_updates"])
            #expect(request.topics[1].partitions == [.init(index: 0, fetchOffset: 17, maxBytes: 1_048_576), .init(index: 5, fetchOffset: 3, maxBytes: 1_048_576)])
            #expect(request.isPlainConsumerFetch)
            let cut = Array(frame.dropLast(version >= 7 ? 8 : 2))
            let cutHeader = try #require(KafkaWire.requestHeader(cut))
            #expect(KafkaWire.fetchRequest(cut, header: cutHeader) == nil)
        }
        var session = Self.fetchRequest(version: 11, offsets: [("odds_updates", 0, 1)])
        let header = try #require(KafkaWire.requestHeader(session))
        let sessionID = try #require(header.bodyOffset) + 17
        KafkaWire.writeInt32(99, into: &session, at: sessionID)
        #expect(try #require(KafkaWire.fetchRequest(session, header: header)).isPlainConsumerFetch == false)
    }

    @Test("a Produce request's records and its answer's offsets are read (v7 and v8)")
    func produceRecordsAndOffsets() throws {
        let batch = Self.batch(records: 2)
        for transactionalID in [String?.none, "tx-1"] {
            var request = Frame()
            request.int16(0); request.int16(7); request.int32(12); request.string("odds-ingest")
            request.string(transactionalID); request.int16(-1); request.int32(30_000)
            request.int32(1); request.string("odds_updates"); request.int32(2)
            request.int32(3); request.int32(Int32(batch.count)); request.bytes += batch
            request.int32(4); request.int32(-1)
            let header = try #require(KafkaWire.requestHeader(request.bytes))
            let produced = try #require(KafkaWire.producedRecords(request.bytes, header: header))
            #expect(produced.transactional == (transactionalID != nil))
            #expect(produced.writes == [.init(topic: "odds_updates", partition: 3, records: batch), .init(topic: "odds_updates", partition: 4, records: [])])
        }
        for version: Int16 in [7, 8] {
            var answer = Frame()
            answer.int32(12); answer.int32(1); answer.string("odds_updates"); answer.int32(2)
            for (partition, error, base) in [(Int32(3), Int16(0), Int64(700)), (4, 6, -1)] {
                answer.int32(partition); answer.int16(error); answer.int64(base); answer.int64(-1); answer.int64(0)
                if version >= 8 { answer.int32(0); answer.string(nil) }
            }
            answer.int32(0)  // throttle_time_ms
            #expect(KafkaWire.produceResults(answer.bytes, version: version) == [
                .init(topic: "odds_updates", partition: 3, errorCode: 0, baseOffset: 700),
                .init(topic: "odds_updates", partition: 4, errorCode: 6, baseOffset: -1),
            ])
            #expect(KafkaWire.produceResults(Array(answer.bytes.prefix(30)), version: version) == nil)
        }
    }

    @Test("the front's Fetch answer reads back as written (v4, v7, v11), and counts as data only when it has records")
    func fetchAnswerRoundTrip() throws {
        let records = Self.placed(Self.batch(records: 2), at: 20)
        for version: Int16 in [4, 7, 11] {
            let answer = KafkaWire.fetchAnswer(correlationID: 31, version: version, topics: [
                ("odds_updates", [.init(index: 3, highWatermark: 22, logStartOffset: 20, batches: [records]),
                                  .init(index: 4, highWatermark: 9, logStartOffset: 0, batches: [])]),
            ])
            #expect(KafkaWire.readInt32(answer, at: 0) == 31)
            #expect(KafkaWire.fetchedPartitions(answer, version: version) == [
                .init(topic: "odds_updates", partition: 3, errorCode: 0, highWatermark: 22, records: records),
                .init(topic: "odds_updates", partition: 4, errorCode: 0, highWatermark: 9, records: []),
            ])
            #expect(KafkaWire.fetchResponseHasDataOrError(answer, version: version) == true)
            let empty = KafkaWire.fetchAnswer(correlationID: 32, version: version, topics: [
                ("odds_updates", [.init(index: 4, highWatermark: 9, logStartOffset: 0, batches: [])]),
            ])
            #expect(KafkaWire.fetchResponseHasDataOrError(empty, version: version) == false)
        }
    }
}
