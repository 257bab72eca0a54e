import Foundation

/// The front's own copy of the newest part of each partition's log, so it can answer a Fetch
/// without the mock.
///
/// Why: librdkafka's mock (2.0.2) finds the batch holding a fetch offset by walking the
/// partition's whole list of batches from the oldest, and it keeps up to 5 MiB of them. With one
/// small batch per update that is thousands of cache misses per fetch: `perf` had the broker
/// spend 75 % of its CPU in that walk at 1,000 updates/s. The mock also answers at most one
/// batch per partition per fetch.
///
/// What is held, per (mock broker port, topic, partition):
/// - every batch a Produce through this front wrote, with the offset the broker's answer gave it
///   (the bytes the mock stores: same header patches);
/// - or what a Fetch answer from the mock showed, when it reached the log's end.
/// A partition is held only while the copy is whole from `start` to `end`, and `end` is never
/// past the mock's log end (offsets only ever get new records, never other ones), so an answer
/// from here has the bytes the mock would give, possibly a moment before the mock's newest
/// produce is known here. Anything else (an older offset, a partition not seen yet, a broker
/// that is not the leader, transactional writes) goes to the mock as before.
final class FrontLog: @unchecked Sendable {
    struct Key: Hashable {
        let brokerPort: Int32
        let topic: String
        let partition: Int32
    }

    struct Batch {
        let baseOffset: Int64
        /// The offset after the batch's last record.
        let endOffset: Int64
        let bytes: [UInt8]
    }

    private struct Partition {
        /// Batches from `head` on are held; earlier slots were dropped to stay in the bound.
        var batches: [Batch] = []
        var head = 0
        var start: Int64
        var end: Int64
        var size = 0
        var leaderEpoch: Int32 = 0

        init(emptyAt offset: Int64, leaderEpoch: Int32) {
            start = offset
            end = offset
            self.leaderEpoch = leaderEpoch
        }

        mutating func append(_ batch: Batch, bound: Int) {
            if head == batches.count { start = batch.baseOffset }
            batches.append(batch)
            end = batch.endOffset
            size += batch.bytes.count
            while size > bound, batches.count - head > 1 {
                size -= batches[head].bytes.count
                head += 1
                start = batches[head].baseOffset
            }
            if head > 1_024, head * 2 > batches.count {
                batches.removeFirst(head)
                head = 0
            }
        }

        /// The held batch holding `offset`, by binary search.
        func index(of offset: Int64) -> Int? {
            var low = head
            var high = batches.count
            while low < high {
                let middle = (low + high) / 2
                if batches[middle].endOffset <= offset { low = middle + 1 } else { high = middle }
            }
            return low < batches.count && batches[low].baseOffset <= offset ? low : nil
        }
    }

    /// What a read of one partition gives.
    enum Read {
        /// Not held here: ask the mock.
        case notHeld
        case held(highWatermark: Int64, logStartOffset: Int64, batches: [[UInt8]])
    }

    private let lock = NSLock()
    private var partitions: [Key: Partition] = [:]
    /// Written by a transactional producer: never answered here (aborts are not followed).
    private var transactional: Set<Key> = []
    let boundPerPartition: Int

    init(boundPerPartition: Int = 4 * 1024 * 1024) {
        self.boundPerPartition = boundPerPartition
    }

    /// A Produce through the front wrote `records` at `baseOffset` (the broker's answer).
    func produced(_ key: Key, baseOffset: Int64, records: [UInt8]) {
        guard baseOffset >= 0 else { return }  // a duplicate the broker did not write again
        lock.lock()
        defer { lock.unlock() }
        guard !transactional.contains(key) else { return }
        // The mock stores a request's records as one entry whose offsets follow the first
        // batch's record count; anything else is not copied.
        guard let batches = KafkaWire.recordBatches(records), batches.count == 1 else {
            partitions[key] = nil
            return
        }
        let epoch = partitions[key]?.leaderEpoch ?? 0
        let batch = Batch(baseOffset: baseOffset, endOffset: baseOffset + Int64(batches[0].recordCount),
                          bytes: KafkaWire.placed(records, at: baseOffset, leaderEpoch: epoch))
        if var partition = partitions[key] {
            if baseOffset < partition.end { return }  // known already (answers seen out of order)
            if baseOffset > partition.end {
                // A write whose answer is not seen yet lies between: hold from this one on.
                partition = Partition(emptyAt: baseOffset, leaderEpoch: epoch)
            }
            partition.append(batch, bound: boundPerPartition)
            partitions[key] = partition
        } else {
            var partition = Partition(emptyAt: baseOffset, leaderEpoch: epoch)
            partition.append(batch, bound: boundPerPartition)
            partitions[key] = partition
        }
    }

    /// A write whose offsets the front cannot know (an answer it could not read, acks=0).
    func forget(_ key: Key) {
        lock.lock()
        partitions[key] = nil
        lock.unlock()
    }

    /// A write of unknown partitions: nothing held on that broker can be trusted to be whole.
    func forgetAll(brokerPort: Int32) {
        lock.lock()
        partitions = partitions.filter { $0.key.brokerPort != brokerPort }
        lock.unlock()
    }

    func markTransactional(_ key: Key) {
        lock.lock()
        transactional.insert(key)
        partitions[key] = nil
        lock.unlock()
    }

    /// The mock answered a fetch of a partition that is not held: hold it if the answer reached
    /// the log's end (its records, or nothing at the end).
    func fetched(_ key: Key, _ fetched: KafkaWire.FetchedPartition) {
        guard fetched.errorCode == 0, fetched.highWatermark >= 0 else { return }
        lock.lock()
        defer { lock.unlock() }
        guard !transactional.contains(key) else { return }
        if let held = partitions[key] {
            // Produces keep a held partition current; a newer end seen here means one was missed.
            if fetched.highWatermark > held.end { partitions[key] = nil }
            return
        }
        guard let batches = KafkaWire.recordBatches(fetched.records) else { return }
        guard let first = batches.first else {
            partitions[key] = Partition(emptyAt: fetched.highWatermark, leaderEpoch: 0)
            return
        }
        var partition = Partition(emptyAt: first.baseOffset, leaderEpoch: batches.last!.leaderEpoch)
        var position = 0
        for batch in batches {
            guard batch.baseOffset == partition.end else { return }
            let bytes = Array(fetched.records[position..<position + batch.size])
            partition.append(Batch(baseOffset: batch.baseOffset, endOffset: batch.baseOffset + Int64(batch.recordCount), bytes: bytes),
                             bound: boundPerPartition)
            position += batch.size
        }
        guard partition.end == fetched.highWatermark else { return }  // more beyond: not whole
        partitions[key] = partition
    }

    /// The batches from the one holding `offset` on, up to `maxBytes` (at least one batch when
    /// `firstInAnswer`, as Kafka does so that a large batch is never stuck).
    func read(_ key: Key, offset: Int64, maxBytes: Int, firstInAnswer: Bool) -> Read {
        lock.lock()
        defer { lock.unlock() }
        guard let partition = partitions[key], offset >= partition.start, offset <= partition.end else { return .notHeld }
        var batches: [[UInt8]] = []
        if offset < partition.end {
            guard var index = partition.index(of: offset) else { return .notHeld }
            var size = 0
            while index < partition.batches.count {
                let bytes = partition.batches[index].bytes
                guard size + bytes.count <= maxBytes || (batches.isEmpty && firstInAnswer) else { break }
                batches.append(bytes)
                size += bytes.count
                index += 1
            }
        }
        return .held(highWatermark: partition.end, logStartOffset: partition.start, batches: batches)
    }
}
