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
final class LongPollFront: @unchecked Sendable {
    /// Mock broker port → front port, fixed once started.
    private(set) var portMap: [Int32: Int32] = [:]
    private let produced = ProduceSignal()
    /// Each listening socket with the mock broker port it relays to.
    private var listeners: [(socket: Int32, brokerPort: Int32)] = []
    private let host = "127.0.0.1"
    static let maxFrameSize = 256 * 1024 * 1024

    /// Opens a listening socket for each broker port; `bootstrap` lists the front's addresses.
    init(brokerPorts: [Int32]) throws {
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
            let relay = Relay(client: client, broker: upstream, front: self)
            relay.start()
        }
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
    }

    enum Outcome { case pending, delivered, empty, closed }

    let client: Int32
    let broker: Int32
    let front: LongPollFront
    private let condition = NSCondition()
    private var inFlight: [InFlight] = []
    private var inFlightHead = 0
    private var outcome = Outcome.pending
    private var closed = false

    init(client: Int32, broker: Int32, front: LongPollFront) {
        self.client = client
        self.broker = broker
        self.front = front
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
    private func finish() {
        condition.lock()
        let second = closed
        closed = true
        outcome = .closed
        condition.broadcast()
        condition.unlock()
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
                let wait = max(0, KafkaWire.readInt32(frame, at: waitOffset))
                guard park(&frame, waitOffset: waitOffset, wait: wait, header: header) else { return }
                continue
            }
            var request = InFlight(apiKey: header.apiKey, apiVersion: header.apiVersion)
            var expectsAnswer = true
            if header.apiKey == KafkaWire.APIKey.produce.rawValue {
                request.topics = KafkaWire.produceTopics(frame, header: header)
                expectsAnswer = KafkaWire.produceAcks(frame, header: header) != 0
            }
            if expectsAnswer { push(request) }
            guard Socket.writeFrame(broker, frame) else { return }
            if !expectsAnswer { front.produceSignal.produced(topics: request.topics) }
        }
    }

    /// Asks the broker without waiting; while the answer is empty and time is left, asks again
    /// after the next acknowledged Produce. False when the connection ended.
    private func park(_ frame: inout [UInt8], waitOffset: Int, wait: Int32, header: KafkaWire.RequestHeader) -> Bool {
        KafkaWire.writeInt32(0, into: &frame, at: waitOffset)
        let deadline = Date(timeIntervalSinceNow: Double(wait) / 1000)
        let topics = KafkaWire.fetchTopics(frame, header: header)
        while true {
            let seen = front.produceSignal.current
            let last = Date() >= deadline
            condition.lock()
            if outcome != .closed { outcome = .pending }
            condition.unlock()
            push(InFlight(apiKey: header.apiKey, apiVersion: header.apiVersion, mayHold: !last))
            // Written after the push: the answer can only come once its entry is there.
            guard Socket.writeFrame(broker, frame) else { return false }
            if last { return true }
            switch awaitOutcome() {
            case .delivered: return true
            case .closed, .pending: return false
            case .empty: front.produceSignal.wait(for: topics, after: seen, until: deadline)
            }
        }
    }

    private func push(_ request: InFlight) {
        condition.lock()
        inFlight.append(request)
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
        while var frame = reader.next() {
            guard let request = nextInFlight() else { return }  // an answer nobody asked for: protocol broken
            switch KafkaWire.APIKey(rawValue: request.apiKey) {
            case .fetch where request.mayHold:
                if KafkaWire.fetchResponseHasDataOrError(frame, version: request.apiVersion) == false {
                    settle(.empty)
                    continue
                }
                guard Socket.writeFrame(client, frame) else { return }
                settle(.delivered)
                continue
            case .metadata:
                _ = KafkaWire.rewriteMetadataPorts(&frame, version: request.apiVersion, map: front.frontPort(for:))
            case .findCoordinator:
                _ = KafkaWire.rewriteCoordinatorPort(&frame, version: request.apiVersion, map: front.frontPort(for:))
            case .produce:
                guard Socket.writeFrame(client, frame) else { return }
                front.produceSignal.produced(topics: request.topics)
                continue
            default:
                break
            }
            guard Socket.writeFrame(client, frame) else { return }
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
            if read > 0 { end += read; continue }
            if read < 0 && errno == EINTR { continue }
            return false
        }
        return true
    }
}
