import Foundation
import SocketSupport

/// Gives the mock cluster the long-poll fetch of real Kafka.
///
/// librdkafka's mock (2.0.2) builds a Fetch response when the request arrives and, if it is
/// empty, sends it only after the full `fetch.wait.max.ms`: data produced meanwhile waits for the
/// next fetch. So a consumer had to choose between a short wait (a fetch every millisecond,
/// CPU burnt while idle) and latency of up to the whole wait. Real Kafka parks an empty fetch
/// and answers it as soon as data arrives, which is what clients are written for.
///
/// The front listens on one port per mock broker and relays every connection to its broker
/// byte for byte, except:
/// - a Fetch is forwarded with max_wait_ms = 0; if the answer is empty it is not passed on but
///   the fetch is asked again as soon as any Produce has been acknowledged, or with the time
///   left, so the client gets its answer when data arrives or when its wait is over. Like real
///   Kafka, later requests on that connection wait behind the parked fetch.
/// - Metadata and FindCoordinator answers name the front's ports instead of the brokers', so
///   clients keep talking through it.
/// - A Fetch whose partitions the front holds (`FrontLog`: the newest records of each partition,
///   copied from the Produce requests it relays) is answered by the front itself, at once when
///   there is data, else when a Produce to one of its topics arrives or its wait is over.
final class LongPollFront: @unchecked Sendable {
    /// Mock broker port → front port, fixed once started.
    private(set) var portMap: [Int32: Int32] = [:]
    private let produced = ProduceSignal()
    let log = FrontLog()
    private let countsLock = NSLock()
    private var fetchCounts = (fromLog: 0, fromBroker: 0)
    /// Each listening socket with the mock broker port it relays to.
    private var listeners: [(socket: Int32, brokerPort: Int32)] = []
    private let host = "127.0.0.1"
    static let maxFrameSize = 256 * 1024 * 1024

    /// Whether fetches the log holds are answered from it (off: every fetch goes to the mock).
    let answersFromLog: Bool

    /// Opens a listening socket for each broker port; `bootstrap` lists the front's addresses.
    init(brokerPorts: [Int32], answersFromLog: Bool = true) throws {
        self.answersFromLog = answersFromLog
        for port in brokerPorts {
            guard let (listener, frontPort) = BlockingSocket.listen(host: host) else {
                throw Socket.Failure(description: "cannot listen on \(host): \(String(cString: strerror(errno)))")
            }
            listeners.append((listener, port))
            portMap[port] = Int32(frontPort)
        }
    }

    var bootstrap: String {
        portMap.values.sorted().map { "\(host):\($0)" }.joined(separator: ",")
    }

    /// Accepts connections on every listener, each on its own thread.
    func start() {
        for (listener, brokerPort) in listeners {
            let thread = Thread { [self] in acceptLoop(listener: listener, brokerPort: brokerPort) }
            thread.name = "front-accept-\(brokerPort)"
            thread.start()
        }
    }

    private func acceptLoop(listener: Int32, brokerPort: Int32) {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                FileHandle.standardError.write(Data("kafka-dev-broker: accept failed: \(String(cString: strerror(errno)))\n".utf8))
                return
            }
            guard let upstream = BlockingSocket.connect(host: host, port: Int(brokerPort), configure: Socket.noDelay) else {
                close(client)
                continue
            }
            Socket.noDelay(client)
            let relay = Relay(client: client, broker: upstream, brokerPort: brokerPort, front: self)
            relay.start()
        }
    }

    /// Fetch answers written by the front from its log, and fetches sent on to the mock (a
    /// parked fetch asked again counts again).
    var fetchesAnswered: (fromLog: Int, fromBroker: Int) {
        countsLock.lock()
        defer { countsLock.unlock() }
        return fetchCounts
    }

    fileprivate func counted(fromLog: Bool) {
        countsLock.lock()
        if fromLog { fetchCounts.fromLog += 1 } else { fetchCounts.fromBroker += 1 }
        countsLock.unlock()
    }

    fileprivate func frontPort(for brokerPort: Int32) -> Int32 { portMap[brokerPort] ?? brokerPort }
    fileprivate var produceSignal: ProduceSignal { produced }
}

/// Counts acknowledged Produce requests, per topic; parked fetches wait on it for the topics
/// they ask for (a fetch on the heartbeat topic does not wake for every odds update).
final class ProduceSignal: @unchecked Sendable {
    private let condition = NSCondition()
    private var generation: UInt64 = 0
    private var lastByTopic: [String: UInt64] = [:]
    /// The last produce whose topics could not be read: it wakes every fetch.
    private var lastUnknown: UInt64 = 0

    var current: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return generation
    }

    /// `topics` nil: unknown, wakes every parked fetch.
    func produced(topics: Set<String>?) {
        condition.lock()
        generation &+= 1
        if let topics {
            for topic in topics { lastByTopic[topic] = generation }
        } else {
            lastUnknown = generation
        }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until something was produced to one of `topics` (nil: to any) after `seen`, or
    /// until `deadline`.
    func wait(for topics: Set<String>?, after seen: UInt64, until deadline: Date) {
        condition.lock()
        defer { condition.unlock() }
        func arrived() -> Bool {
            if lastUnknown > seen { return true }
            guard let topics else { return generation > seen }
            return topics.contains { lastByTopic[$0, default: 0] > seen }
        }
        while !arrived(), condition.wait(until: deadline) {}
    }
}

/// One client connection and its connection to the broker: a thread per direction.
private final class Relay: @unchecked Sendable {
    /// What the broker will answer next, in request order (Kafka answers in order per connection).
    struct InFlight {
        let apiKey: Int16
        let apiVersion: Int16
        /// An answer the front may keep back (an empty answer to a parked fetch).
        var mayHold = false
        /// For a Produce: the topics it writes to (nil: unknown).
        var topics: Set<String>? = nil
        /// For a Produce: its records per partition, copied into the front's log once the
        /// answer gives their offsets (nil: not copied).
        var writes: [KafkaWire.ProducedRecords]? = nil
        /// A Fetch answer the front's log learns from.
        var isFetch = false
    }

    enum Outcome { case pending, delivered, empty, closed }

    let client: Int32
    let broker: Int32
    /// The mock broker this connection relays to (the front's log is kept per broker).
    let brokerPort: Int32
    let front: LongPollFront
    private let condition = NSCondition()
    private var inFlight: [InFlight] = []
    private var inFlightHead = 0
    /// Requests sent to the broker, and those whose answer was passed on or dropped: when equal,
    /// nothing is outstanding and the front may write an answer of its own.
    private var pushed = 0
    private var handled = 0
    private var outcome = Outcome.pending
    private var closed = false

    init(client: Int32, broker: Int32, brokerPort: Int32, front: LongPollFront) {
        self.client = client
        self.broker = broker
        self.brokerPort = brokerPort
        self.front = front
    }

    private func key(_ topic: String, _ partition: Int32) -> FrontLog.Key {
        FrontLog.Key(brokerPort: brokerPort, topic: topic, partition: partition)
    }

    func start() {
        let requests = Thread { [self] in relayRequests(); finish() }
        requests.name = "front-requests"
        requests.start()
        let responses = Thread { [self] in relayResponses(); finish() }
        responses.name = "front-responses"
        responses.start()
    }

    /// Either direction ending ends both; the second call closes the sockets.
    ///
    /// A Produce whose answer was not read yet (its producer killed, the connection cut) may
    /// still be written by the broker: the front's log no longer knows where those partitions
    /// end, so it lets them go and learns them again from the broker's fetch answers. (Before,
    /// it kept answering a fetch at its stale end as "nothing more", for good: a restarted
    /// ingest never found the last messages its predecessor wrote.)
    private func finish() {
        condition.lock()
        let second = closed
        closed = true
        outcome = .closed
        let unanswered = inFlight[inFlightHead...].compactMap(\.writes).joined()
        condition.broadcast()
        condition.unlock()
        for write in unanswered { front.log.forget(key(write.topic, write.partition)) }
        shutdown(client, Int32(SHUT_RDWR))
        shutdown(broker, Int32(SHUT_RDWR))
        if second {
            close(client)
            close(broker)
        }
    }

    // MARK: Client → broker

    private func relayRequests() {
        let reader = FrameReader(client)
        while var frame = reader.next() {
            guard let header = KafkaWire.requestHeader(frame) else { return }
            if let waitOffset = KafkaWire.fetchMaxWaitOffset(header, frameSize: frame.count) {
                guard fetch(&frame, waitOffset: waitOffset, header: header) else { return }
                continue
            }
            var request = InFlight(apiKey: header.apiKey, apiVersion: header.apiVersion)
            var expectsAnswer = true
            if header.apiKey == KafkaWire.APIKey.produce.rawValue {
                let produced = KafkaWire.producedRecords(frame, header: header)
                request.topics = produced.map { Set($0.writes.map(\.topic)) }
                expectsAnswer = KafkaWire.produceAcks(frame, header: header) != 0
                request.writes = copiedWrites(produced, answered: expectsAnswer)
            }
            if expectsAnswer { push(request) }
            guard Socket.writeFrame(broker, frame) else { return }
            if !expectsAnswer { front.produceSignal.produced(topics: request.topics) }
        }
    }

    /// The records of a Produce that the front's log will copy once the answer gives their
    /// offsets; nil when none are. What cannot be followed is dropped from the log.
    private func copiedWrites(_ produced: (transactional: Bool, writes: [KafkaWire.ProducedRecords])?, answered: Bool) -> [KafkaWire.ProducedRecords]? {
        guard let produced else {
            front.log.forgetAll(brokerPort: brokerPort)  // it may write anywhere on this broker
            return nil
        }
        for write in produced.writes {
            if produced.transactional {
                front.log.markTransactional(key(write.topic, write.partition))
            } else if !answered {
                front.log.forget(key(write.topic, write.partition))  // acks=0: no offsets will come
            }
        }
        return produced.transactional || !answered ? nil : produced.writes
    }

    /// Answers a Fetch: from the front's log when it holds every partition asked for, else by
    /// asking the broker without waiting. While there is nothing to answer and time is left, it
    /// tries again after the next acknowledged Produce to one of the fetch's topics. False when
    /// the connection ended.
    private func fetch(_ frame: inout [UInt8], waitOffset: Int, header: KafkaWire.RequestHeader) -> Bool {
        let wait = max(0, KafkaWire.readInt32(frame, at: waitOffset))
        let deadline = Date(timeIntervalSinceNow: Double(wait) / 1000)
        let request = KafkaWire.fetchRequest(frame, header: header).flatMap { $0.isPlainConsumerFetch && front.answersFromLog ? $0 : nil }
        let topics = request.map { Set($0.topics.map(\.name)) } ?? KafkaWire.fetchTopics(frame, header: header)
        KafkaWire.writeInt32(0, into: &frame, at: waitOffset)
        while true {
            let seen = front.produceSignal.current
            let last = Date() >= deadline
            if let request, let answer = answerFromLog(request, header: header) {
                if answer.enough || last {
                    guard awaitNothingOutstanding() else { return false }
                    front.counted(fromLog: true)
                    return Socket.writeFrame(client, answer.frame)
                }
            } else {
                front.counted(fromLog: false)
                condition.lock()
                if outcome != .closed { outcome = .pending }
                condition.unlock()
                push(InFlight(apiKey: header.apiKey, apiVersion: header.apiVersion, mayHold: !last, isFetch: true))
                // Written after the push: the answer can only come once its entry is there.
                guard Socket.writeFrame(broker, frame) else { return false }
                if last { return true }
                switch awaitOutcome() {
                case .delivered: return true
                case .closed, .pending: return false
                case .empty: break
                }
            }
            front.produceSignal.wait(for: topics, after: seen, until: deadline)
        }
    }

    /// The answer the front's log gives to `request`, and whether it has the bytes the fetch
    /// waits for (min_bytes); nil when a partition is not held.
    private func answerFromLog(_ request: KafkaWire.FetchRequest, header: KafkaWire.RequestHeader) -> (frame: [UInt8], enough: Bool)? {
        var total = 0
        var topics: [(name: String, partitions: [KafkaWire.FetchAnswerPartition])] = []
        for topic in request.topics {
            var partitions: [KafkaWire.FetchAnswerPartition] = []
            for partition in topic.partitions {
                let budget = min(Int(partition.maxBytes), Int(request.maxBytes) - total)
                let read = front.log.read(key(topic.name, partition.index), offset: partition.fetchOffset,
                                          maxBytes: budget, firstInAnswer: total == 0)
                guard case .held(let highWatermark, let logStart, let batches) = read else { return nil }
                total += batches.reduce(0) { $0 + $1.count }
                partitions.append(.init(index: partition.index, highWatermark: highWatermark, logStartOffset: logStart, batches: batches))
            }
            topics.append((topic.name, partitions))
        }
        let frame = KafkaWire.fetchAnswer(correlationID: header.correlationID, version: header.apiVersion, topics: topics)
        return (frame, request.minBytes <= 0 ? true : total >= Int(request.minBytes))
    }

    private func push(_ request: InFlight) {
        condition.lock()
        inFlight.append(request)
        pushed += 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until every answer asked of the broker on this connection was passed on, so an
    /// answer the front writes itself keeps the order of the requests. False when closed.
    private func awaitNothingOutstanding() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while handled < pushed, !closed { condition.wait() }
        return !closed
    }

    private func markHandled() {
        condition.lock()
        handled += 1
        condition.broadcast()
        condition.unlock()
    }

    private func awaitOutcome() -> Outcome {
        condition.lock()
        defer { condition.unlock() }
        while outcome == .pending { condition.wait() }
        return outcome
    }

    private func settle(_ result: Outcome) {
        condition.lock()
        if outcome != .closed { outcome = result }
        condition.broadcast()
        condition.unlock()
    }

    // MARK: Broker → client

    private func nextInFlight() -> InFlight? {
        condition.lock()
        defer { condition.unlock() }
        // The request is pushed before it is written, so its answer never comes first.
        guard inFlightHead < inFlight.count else { return nil }
        let request = inFlight[inFlightHead]
        inFlightHead += 1
        if inFlightHead > 1_024 {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
        return request
    }

    private func relayResponses() {
        let reader = FrameReader(broker)
        while let frame = reader.next() {
            guard let request = nextInFlight() else { return }  // an answer nobody asked for: protocol broken
            guard pass(frame, answering: request) else { return }
            markHandled()
        }
    }

    /// Passes one broker answer on (or keeps back an empty one to a parked fetch). False when
    /// the client is gone.
    private func pass(_ answer: [UInt8], answering request: InFlight) -> Bool {
        var frame = answer
        switch KafkaWire.APIKey(rawValue: request.apiKey) {
        case .fetch:
            if request.isFetch { learn(fromFetchAnswer: frame, version: request.apiVersion) }
            guard request.mayHold else { break }
            if KafkaWire.fetchResponseHasDataOrError(frame, version: request.apiVersion) == false {
                settle(.empty)
                return true
            }
            guard Socket.writeFrame(client, frame) else { return false }
            settle(.delivered)
            return true
        case .metadata:
            _ = KafkaWire.rewriteMetadataPorts(&frame, version: request.apiVersion, map: front.frontPort(for:))
        case .findCoordinator:
            _ = KafkaWire.rewriteCoordinatorPort(&frame, version: request.apiVersion, map: front.frontPort(for:))
        case .produce:
            // Copied before the producer hears of it: an acknowledged record is in the log.
            if let writes = request.writes { copy(writes, placedBy: frame, version: request.apiVersion) }
            guard Socket.writeFrame(client, frame) else { return false }
            front.produceSignal.produced(topics: request.topics)
            return true
        default:
            break
        }
        return Socket.writeFrame(client, frame)
    }

    /// Puts a Produce's records into the front's log at the offsets the broker's answer gives.
    private func copy(_ writes: [KafkaWire.ProducedRecords], placedBy answer: [UInt8], version: Int16) {
        guard let results = KafkaWire.produceResults(answer, version: version) else {
            for write in writes { front.log.forget(key(write.topic, write.partition)) }
            return
        }
        for result in results where result.errorCode == 0 {
            guard let write = writes.first(where: { $0.topic == result.topic && $0.partition == result.partition }) else { continue }
            front.log.produced(key(result.topic, result.partition), baseOffset: result.baseOffset, records: write.records)
        }
    }

    /// A Fetch the broker answered: partitions the log does not hold yet are taken from it when
    /// it reached their end.
    private func learn(fromFetchAnswer answer: [UInt8], version: Int16) {
        guard let partitions = KafkaWire.fetchedPartitions(answer, version: version) else { return }
        for partition in partitions {
            front.log.fetched(key(partition.topic, partition.partition), partition)
        }
    }
}

/// Kafka framing over the front's blocking sockets (opened with `BlockingSocket`).
enum Socket {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Small requests and answers go out at once (no Nagle delay on a latency path).
    static func noDelay(_ descriptor: Int32) {
        BlockingSocket.setOption(descriptor, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
    }

    /// Acknowledges what was read now instead of up to 40 ms later. The mock's sockets (and
    /// librdkafka's, whose `socket.nagle.disable` is off by default) use Nagle's algorithm: a
    /// small answer written while the previous one is unacknowledged waits for that ACK, which a
    /// delayed ACK held until the next request came to carry it (at 100 updates/s, a produce
    /// answer waited ~10 ms, the gap to the next produce). Linux clears the flag as it works, so
    /// it is set after every read.
    static func acknowledgeAtOnce(_ descriptor: Int32) {
        BlockingSocket.setOption(descriptor, level: Int32(IPPROTO_TCP), name: Int32(TCP_QUICKACK), value: 1)
    }

    /// The 4-byte size prefix and the frame in one system call.
    static func writeFrame(_ descriptor: Int32, _ frame: [UInt8]) -> Bool {
        var prefix = [UInt8](repeating: 0, count: 4)
        KafkaWire.writeInt32(Int32(frame.count), into: &prefix, at: 0)
        var sent = 0
        let total = frame.count + 4
        while sent < total {
            let count = prefix.withUnsafeMutableBytes { head in
                frame.withUnsafeBytes { body -> Int in
                    var parts: [iovec] = []
                    if sent < 4 { parts.append(iovec(iov_base: head.baseAddress! + sent, iov_len: 4 - sent)) }
                    let bodySent = max(0, sent - 4)
                    if bodySent < body.count {
                        parts.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress! + bodySent), iov_len: body.count - bodySent))
                    }
                    // sendmsg, not writev: MSG_NOSIGNAL, so a client that died (kill -9) is an
                    // error to handle here, not a SIGPIPE that ends the broker.
                    return parts.withUnsafeMutableBufferPointer { vectors in
                        var message = msghdr()
                        message.msg_iov = vectors.baseAddress
                        message.msg_iovlen = vectors.count
                        return sendmsg(descriptor, &message, Int32(MSG_NOSIGNAL))
                    }
                }
            }
            if count > 0 { sent += count; continue }
            if count < 0 && errno == EINTR { continue }
            return false
        }
        return true
    }
}

/// Size-prefixed Kafka frames from a socket, read in large chunks (one system call serves
/// several small frames).
final class FrameReader {
    private let descriptor: Int32
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0

    init(_ descriptor: Int32) { self.descriptor = descriptor }

    /// The next frame without its prefix; nil at end of stream, on an error or on a size no
    /// Kafka client sends.
    func next() -> [UInt8]? {
        guard fill(atLeast: 4) else { return nil }
        let size = Int(KafkaWire.readInt32(buffer, at: start))
        guard size >= 0, size <= LongPollFront.maxFrameSize else { return nil }
        start += 4
        guard fill(atLeast: size) else { return nil }
        let frame = Array(buffer[start..<start + size])
        start += size
        return frame
    }

    /// Makes at least `count` unread bytes available (growing the buffer for a large frame).
    private func fill(atLeast count: Int) -> Bool {
        while end - start < count {
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            }
            if buffer.count < count { buffer += [UInt8](repeating: 0, count: count - buffer.count) }
            let read = buffer.withUnsafeMutableBytes { raw in
                Glibc.read(descriptor, raw.baseAddress! + end, raw.count - end)
            }
            if read > 0 {
                end += read
                Socket.acknowledgeAtOnce(descriptor)
                continue
            }
            if read < 0 && errno == EINTR { continue }
            return false
        }
        return true
    }
}
