import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import CNIOLinux  // epoll (Glibc's module map leaves sys/epoll.h out)
import SocketSupport

/// `--client poll`: WebSocket clients on plain non-blocking sockets, one epoll set per thread,
/// polled every `pollInterval` instead of woken per frame.
///
/// Why: with 10,000 clients on the same 2 cores as the server, an event-loop client that
/// sleeps in `epoll_wait` makes every server write wake a client thread (the loopback delivers
/// in the writer's system call), so the server's CPU is charged with the clients' scheduler
/// work that remote clients' machines would do, and both ends pay a wakeup per frame. A
/// polling client reads whatever arrived since its last look, like a UI that renders at a
/// fixed rate. Latency is still stamped at the read, so the poll interval (default 1 ms) is
/// part of the figure (on average half of it).
final class PollingClients: Sendable {
    let host: String
    let port: Int
    let path: String
    let stats: BenchStats
    let pollInterval: Duration
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)

    init(url: String, stats: BenchStats, pollInterval: Duration) throws {
        guard let components = URLComponents(string: url), let host = components.host else {
            throw BenchError("bad url \(url)")
        }
        self.host = host == "localhost" ? "127.0.0.1" : host
        port = components.port ?? 80
        path = components.path.isEmpty ? "/" : components.path
        self.stats = stats
        self.pollInterval = pollInterval
    }

    struct BenchError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Opens the connections (blocking handshakes, a few thousand per second on loopback),
    /// sends each its subscribe frame, then polls them from `threads` threads until `stop()`.
    func start(eventIds: [[String]], threads: Int) {
        let perThread = (eventIds.count + threads - 1) / max(1, threads)
        for thread in 0..<threads {
            let slice = Array(eventIds.dropFirst(thread * perThread).prefix(perThread))
            let shard = thread % stats.shards
            running.add(1, ordering: .relaxed)
            Thread.detachNewThread { [self] in
                self.run(eventIds: slice, shard: shard)
                self.running.subtract(1, ordering: .relaxed)
            }
        }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        while running.load(ordering: .relaxed) > 0 { usleep(1000) }
    }

    private struct Connection {
        var pending: [UInt8] = []
        var sawSnapshot = false
    }

    private func run(eventIds: [[String]], shard: Int) {
        let epoll = epoll_create1(0)
        guard epoll >= 0 else { return }
        defer { close(epoll) }
        // Indexed by descriptor: no hashing per read.
        var connections: [Connection?] = []
        for ids in eventIds {
            if stopping.load(ordering: .relaxed) { break }
            guard let (fd, leftover) = handshake() else {
                stats.failed.add(1, ordering: .relaxed)
                continue
            }
            stats.connected.add(1, ordering: .relaxed)
            for id in ids { sendFrame(fd: fd, opcode: 0x1, payload: Array(#"{"type":"subscribe","eventId":"\#(id)"}"#.utf8)) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.fd = fd
            _ = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
            if connections.count <= Int(fd) { connections += [Connection?](repeating: nil, count: Int(fd) + 1 - connections.count) }
            connections[Int(fd)] = Connection(pending: leftover)
        }
        var events = [epoll_event](repeating: epoll_event(), count: 1024)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let sleepMicros = useconds_t(max(0, pollInterval.components.attoseconds / 1_000_000_000_000))
            + useconds_t(pollInterval.components.seconds * 1_000_000)
        while !stopping.load(ordering: .relaxed) {
            let ready = Int(epoll_wait(epoll, &events, Int32(events.count), 0))
            if ready <= 0 {
                usleep(sleepMicros)
                continue
            }
            var delivered = 0
            for index in 0..<ready {
                let fd = events[index].data.fd
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                    if !stopping.load(ordering: .relaxed) { stats.closed.add(1, ordering: .relaxed) }
                    _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
                    close(fd)
                    connections[Int(fd)] = nil
                    continue
                }
                guard count > 0 else { continue }
                guard var connection = connections[Int(fd)] else { continue }
                connections[Int(fd)] = nil  // unique while parsing: appends do not copy
                if connection.pending.isEmpty {
                    // The common case: parse straight from the read buffer, keep only a partial frame.
                    let consumed = buffer.withUnsafeBytes { bytes in
                        parse(UnsafeRawBufferPointer(rebasing: bytes[0..<count]), sawSnapshot: &connection.sawSnapshot,
                              fd: fd, shard: shard, measured: &delivered)
                    }
                    if consumed < count { connection.pending.append(contentsOf: buffer[consumed..<count]) }
                } else {
                    connection.pending.append(contentsOf: buffer[0..<count])
                    let consumed = connection.pending.withUnsafeBytes {
                        parse($0, sawSnapshot: &connection.sawSnapshot, fd: fd, shard: shard, measured: &delivered)
                    }
                    connection.pending.removeFirst(consumed)
                }
                connections[Int(fd)] = connection
            }
            if delivered > 0 { stats.delivered.add(delivered, ordering: .relaxed) }
            // A short pass (few sockets ready) means the backlog is gone: wait for the next tick.
            if ready < events.count / 4 { usleep(sleepMicros) }
        }
        for fd in connections.indices where connections[fd] != nil { close(Int32(fd)) }
    }

    /// Parses the complete frames at the start of `bytes`, counting measured odds frames into
    /// `measured`; returns how many bytes they took (the rest is a partial frame).
    private func parse(_ bytes: UnsafeRawBufferPointer, sawSnapshot: inout Bool, fd: Int32, shard: Int,
                       measured: inout Int) -> Int {
        var offset = 0
        let now = WSBenchCommand.nowMicros()
        while bytes.count - offset >= 2 {
            let first = bytes[offset], second = bytes[offset + 1]
            var length = Int(second & 0x7F)
            var header = 2
            if length == 126 {
                guard bytes.count - offset >= 4 else { break }
                length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
                header = 4
            } else if length == 127 {
                guard bytes.count - offset >= 10 else { break }
                length = (0..<8).reduce(0) { $0 << 8 | Int(bytes[offset + 2 + $1]) }
                header = 10
            }
            guard bytes.count - offset >= header + length else { break }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[(offset + header)..<(offset + header + length)])
            offset += header + length
            switch first & 0x0F {
            case 0x1:
                if !sawSnapshot, WSBenchCommand.find(WSBenchCommand.snapshotMarker, in: payload) != nil {
                    sawSnapshot = true
                    stats.subscribed.add(1, ordering: .relaxed)
                } else if let sent = WSBenchCommand.benchMicros(payload) {
                    stats.recordLatency(shard: shard, latencyMicros: max(0, now - sent))
                    measured += 1
                }
            case 0x9:
                sendFrame(fd: fd, opcode: 0xA, payload: Array(payload))
            default:
                break
            }
        }
        return offset
    }

    /// Blocking connect + upgrade; returns the socket and any bytes read past the 101 response.
    private func handshake() -> (Int32, [UInt8])? {
        guard let fd = BlockingSocket.connect(host: host, port: port, configure: {
            BlockingSocket.setOption($0, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        }) else { return nil }
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard writeAll(fd: fd, Array(request.utf8)) else {
            close(fd)
            return nil
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { close(fd); return nil }
            received.append(contentsOf: chunk[0..<count])
            if let end = received.firstRange(of: [13, 10, 13, 10]) {
                guard received.starts(with: Array("HTTP/1.1 101".utf8)) else { close(fd); return nil }
                return (fd, Array(received[end.upperBound...]))
            }
        }
    }

    /// A client frame: FIN + opcode, masked with a zero key (payload unchanged, RFC 6455 §5.3).
    private func sendFrame(fd: Int32, opcode: UInt8, payload: [UInt8]) {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(UInt8(0x80 | payload.count))
        } else {
            frame.append(0x80 | 126)
            frame.append(UInt8(payload.count >> 8))
            frame.append(UInt8(payload.count & 0xFF))
        }
        frame.append(contentsOf: [0, 0, 0, 0])
        frame.append(contentsOf: payload)
        _ = writeAll(fd: fd, frame)
    }

    private func writeAll(fd: Int32, _ bytes: [UInt8]) -> Bool {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 && (errno == EAGAIN || errno == EINTR) {
                usleep(100)
                continue
            }
            guard count > 0 else { return false }
            written += count
        }
        return true
    }
}
