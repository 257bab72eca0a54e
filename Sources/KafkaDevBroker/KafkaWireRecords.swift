/// The parts of the wire protocol the front needs to keep its own copy of each partition's log
/// and answer Fetch requests from it (see `FrontLog`): the offsets a Fetch asks for, the records
/// a Produce writes and the offsets the broker gave them, the records of a Fetch answer, and the
/// Fetch answer itself. Same versions as the rest of `KafkaWire` (non-flexible only).
extension KafkaWire {
    struct FetchRequest: Equatable {
        struct Partition: Equatable {
            let index: Int32
            let fetchOffset: Int64
            let maxBytes: Int32
        }

        struct Topic: Equatable {
            let name: String
            let partitions: [Partition]
        }

        let replicaID: Int32
        let maxWaitMs: Int32
        let minBytes: Int32
        let maxBytes: Int32
        let sessionID: Int32
        let sessionEpoch: Int32
        let topics: [Topic]
        /// A v7+ incremental fetch session drops these partitions (librdkafka 2.0.2 uses none).
        let forgetsPartitions: Bool

        /// A plain consumer fetch without a fetch session: what the front may answer itself.
        var isPlainConsumerFetch: Bool {
            replicaID == -1 && sessionID == 0 && (sessionEpoch == -1 || sessionEpoch == 0) && !forgetsPartitions
        }
    }

    /// A Fetch request (v4...v11); nil when unreadable.
    static func fetchRequest(_ frame: [UInt8], header: RequestHeader) -> FetchRequest? {
        guard header.apiKey == APIKey.fetch.rawValue, (4...11).contains(header.apiVersion),
              let body = header.bodyOffset else { return nil }
        let version = header.apiVersion
        var reader = Reader(frame)
        reader.offset = body
        guard let replica = reader.int32(), let wait = reader.int32(), let minBytes = reader.int32(),
              let maxBytes = reader.int32(), reader.int8() != nil else { return nil }  // isolation_level
        var session: Int32 = 0
        var epoch: Int32 = -1
        if version >= 7 {
            guard let id = reader.int32(), let sessionEpoch = reader.int32() else { return nil }
            session = id
            epoch = sessionEpoch
        }
        guard let topicCount = reader.int32(), topicCount >= 0 else { return nil }
        var topics: [FetchRequest.Topic] = []
        for _ in 0..<topicCount {
            guard let name = reader.string(), let count = reader.int32(), count >= 0 else { return nil }
            var partitions: [FetchRequest.Partition] = []
            for _ in 0..<count {
                guard let index = reader.int32() else { return nil }
                if version >= 9 { guard reader.skip(4) else { return nil } }  // current_leader_epoch
                guard let offset = reader.int64() else { return nil }
                if version >= 5 { guard reader.skip(8) else { return nil } }  // log_start_offset
                guard let partitionMax = reader.int32() else { return nil }
                partitions.append(.init(index: index, fetchOffset: offset, maxBytes: partitionMax))
            }
            topics.append(.init(name: name, partitions: partitions))
        }
        var forgets = false
        if version >= 7 {
            guard let forgotten = reader.int32() else { return nil }
            forgets = forgotten > 0
        }
        return FetchRequest(replicaID: replica, maxWaitMs: wait, minBytes: minBytes, maxBytes: maxBytes,
                            sessionID: session, sessionEpoch: epoch, topics: topics, forgetsPartitions: forgets)
    }

    /// The records a Produce writes to one partition.
    struct ProducedRecords: Equatable {
        let topic: String
        let partition: Int32
        let records: [UInt8]
    }

    /// What a Produce request (v3...v8) writes; nil when unreadable. `transactional`: it names a
    /// transactional id (its records may later be aborted, which the front does not follow).
    static func producedRecords(_ frame: [UInt8], header: RequestHeader) -> (transactional: Bool, writes: [ProducedRecords])? {
        guard header.apiKey == APIKey.produce.rawValue, (3...8).contains(header.apiVersion),
              let body = header.bodyOffset else { return nil }
        var reader = Reader(frame)
        reader.offset = body
        guard let transactionalLength = reader.int16() else { return nil }
        if transactionalLength > 0 { guard reader.skip(Int(transactionalLength)) else { return nil } }
        guard reader.skip(6), let topicCount = reader.int32(), topicCount >= 0 else { return nil }  // acks, timeout_ms
        var writes: [ProducedRecords] = []
        for _ in 0..<topicCount {
            guard let name = reader.string(), let count = reader.int32(), count >= 0 else { return nil }
            for _ in 0..<count {
                guard let index = reader.int32(), let records = reader.nullableBytes() else { return nil }
                writes.append(.init(topic: name, partition: index, records: Array(records)))
            }
        }
        return (transactionalLength >= 0, writes)
    }

    /// One partition of a Produce answer: where the broker put the records.
    struct ProduceResult: Equatable {
        let topic: String
        let partition: Int32
        let errorCode: Int16
        let baseOffset: Int64
    }

    /// The partitions of a Produce answer (v3...v8); nil when unreadable.
    static func produceResults(_ frame: [UInt8], version: Int16) -> [ProduceResult]? {
        guard (3...8).contains(version) else { return nil }
        var reader = Reader(frame)
        guard reader.int32() != nil, let topicCount = reader.int32(), topicCount >= 0 else { return nil }  // correlation_id
        var results: [ProduceResult] = []
        for _ in 0..<topicCount {
            guard let name = reader.string(), let count = reader.int32(), count >= 0 else { return nil }
            for _ in 0..<count {
                guard let index = reader.int32(), let error = reader.int16(), let base = reader.int64(),
                      reader.skip(8) else { return nil }  // log_append_time_ms
                if version >= 5 { guard reader.skip(8) else { return nil } }  // log_start_offset
                if version >= 8 {
                    guard let recordErrors = reader.int32() else { return nil }
                    for _ in 0..<max(0, recordErrors) {
                        guard reader.skip(4), reader.skipNullableString() else { return nil }
                    }
                    guard reader.skipNullableString() else { return nil }  // error_message
                }
                results.append(.init(topic: name, partition: index, errorCode: error, baseOffset: base))
            }
        }
        return results
    }

    /// One partition of a Fetch answer.
    struct FetchedPartition: Equatable {
        let topic: String
        let partition: Int32
        let errorCode: Int16
        let highWatermark: Int64
        let records: [UInt8]
    }

    /// The partitions of a Fetch answer (v4...v11); nil when unreadable or when the whole answer
    /// is an error.
    static func fetchedPartitions(_ frame: [UInt8], version: Int16) -> [FetchedPartition]? {
        guard (4...11).contains(version) else { return nil }
        var reader = Reader(frame)
        guard reader.int32() != nil, reader.int32() != nil else { return nil }  // correlation_id, throttle_time_ms
        if version >= 7 {
            guard let error = reader.int16(), error == 0, reader.int32() != nil else { return nil }  // session_id
        }
        guard let topicCount = reader.int32(), topicCount >= 0 else { return nil }
        var partitions: [FetchedPartition] = []
        for _ in 0..<topicCount {
            guard let name = reader.string(), let count = reader.int32(), count >= 0 else { return nil }
            for _ in 0..<count {
                guard let index = reader.int32(), let error = reader.int16(), let highWatermark = reader.int64(),
                      reader.skip(version >= 5 ? 16 : 8), let aborted = reader.int32() else { return nil }
                if aborted > 0 { guard reader.skip(Int(aborted) * 16) else { return nil } }
                if version >= 11 { guard reader.skip(4) else { return nil } }  // preferred_read_replica
                guard let records = reader.nullableBytes() else { return nil }
                partitions.append(.init(topic: name, partition: index, errorCode: error,
                                        highWatermark: highWatermark, records: Array(records)))
            }
        }
        return partitions
    }

    // MARK: Record batches

    /// The header fields of a v2 record batch the log needs.
    struct RecordBatch: Equatable {
        static let headerSize = 61
        let baseOffset: Int64
        let leaderEpoch: Int32
        let recordCount: Int32
        /// The whole batch, header included.
        let size: Int
    }

    /// The v2 record batches of a records blob, in order; nil when the blob is not a whole
    /// number of readable v2 batches (an older format, a batch cut short).
    static func recordBatches(_ records: [UInt8]) -> [RecordBatch]? {
        var batches: [RecordBatch] = []
        var start = 0
        while start < records.count {
            var reader = Reader(records)
            reader.offset = start
            guard let base = reader.int64(), let length = reader.int32(), length >= RecordBatch.headerSize - 12,
                  let epoch = reader.int32(), reader.int8() == 2,  // magic
                  start + 12 + Int(length) <= records.count else { return nil }
            reader.offset = start + 57
            guard let count = reader.int32(), count >= 1 else { return nil }
            batches.append(.init(baseOffset: base, leaderEpoch: epoch, recordCount: count, size: 12 + Int(length)))
            start += 12 + Int(length)
        }
        return batches
    }

    /// A batch as the broker stores it: the offset it was given and the partition's leader epoch
    /// written into its header (both fields lie outside the batch's CRC).
    static func placed(_ batch: [UInt8], at baseOffset: Int64, leaderEpoch: Int32) -> [UInt8] {
        var placed = batch
        var offset = Writer()
        offset.int64(baseOffset)
        placed.replaceSubrange(0..<8, with: offset.bytes)
        writeInt32(leaderEpoch, into: &placed, at: 12)
        return placed
    }

    // MARK: Fetch answer

    /// One partition of a Fetch answer the front builds.
    struct FetchAnswerPartition {
        let index: Int32
        let highWatermark: Int64
        let logStartOffset: Int64
        /// Whole record batches, in offset order.
        let batches: [[UInt8]]
    }

    /// A Fetch answer (v4...v11) without errors, aborted transactions or a fetch session, in the
    /// request's topic and partition order.
    static func fetchAnswer(correlationID: Int32, version: Int16, topics: [(name: String, partitions: [FetchAnswerPartition])]) -> [UInt8] {
        var writer = Writer()
        writer.int32(correlationID)
        writer.int32(0)  // throttle_time_ms
        if version >= 7 {
            writer.int16(0)  // error_code
            writer.int32(0)  // session_id
        }
        writer.int32(Int32(topics.count))
        for topic in topics {
            writer.string(topic.name)
            writer.int32(Int32(topic.partitions.count))
            for partition in topic.partitions {
                writer.int32(partition.index)
                writer.int16(0)  // error_code
                writer.int64(partition.highWatermark)
                writer.int64(partition.highWatermark)  // last_stable_offset: no transactions
                if version >= 5 { writer.int64(partition.logStartOffset) }
                writer.int32(0)  // aborted_transactions
                if version >= 11 { writer.int32(-1) }  // preferred_read_replica
                writer.int32(Int32(partition.batches.reduce(0) { $0 + $1.count }))
                for batch in partition.batches { writer.bytes += batch }
            }
        }
        return writer.bytes
    }

    /// Big-endian appends.
    struct Writer {
        var bytes: [UInt8] = []

        mutating func int16(_ value: Int16) { append(UInt64(UInt16(bitPattern: value)), count: 2) }
        mutating func int32(_ value: Int32) { append(UInt64(UInt32(bitPattern: value)), count: 4) }
        mutating func int64(_ value: Int64) { append(UInt64(bitPattern: value), count: 8) }

        mutating func string(_ text: String) {
            int16(Int16(text.utf8.count))
            bytes += Array(text.utf8)
        }

        private mutating func append(_ value: UInt64, count: Int) {
            for index in (0..<count).reversed() { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
        }
    }
}
