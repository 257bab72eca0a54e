// ws-peer-client: the WebSocket load client `make bench-odds-service` uses for BOTH odds-service
// and Nchan, so that the two servers face exactly the same client code.
//
// Why not ws-bench: ws-bench takes one URL and picks the event with a subscribe frame; Nchan picks
// the channel from the URL. This client takes a path template ("/sub/{event}") and an optional
// subscribe frame template, and otherwise works like `ws-bench --client poll`: plain blocking
// handshakes, then non-blocking sockets in one epoll set per thread, polled every --poll-us
// (not woken per frame), frames parsed straight from the read buffer, latency stamped at the
// read from the publisher's "source":"bench:<µs>" (CLOCK_REALTIME on both sides).
//
// Standalone Swift (no package, no C shim): the epoll and memmem symbols that Glibc's module map
// leaves out are looked up with dlsym. Built by scripts/bench-peers/build-client.sh.
//
//   ws-peer-client --port P --path '/ws/odds' --subscribe '{"type":"subscribe","eventId":"{event}"}' \
//       --connections N --events E --done-file F [--threads 2] [--poll-us 1000] [--drain 10]
//
// Connection i follows event <prefix>_<i % E>. The first frame holding "type":"snapshot" marks a
// connection subscribed (odds-service's snapshot; for Nchan the stored snapshot-shaped message).
// After all are subscribed it prints one "subscribed" line. It then counts the measured frames
// until F exists (written by the orchestrator when publishing is over, holding the expected
// number of deliveries), drains until that many arrived or --drain seconds passed, and prints
// one JSON line with the results.
import Foundation
import Glibc
import Synchronization

// MARK: - libc symbols missing from the Glibc module

let libc = dlopen(nil, RTLD_NOW)
func symbol<T>(_ name: String, as type: T.Type) -> T {
    guard let pointer = dlsym(libc, name) else {
        FileHandle.standardError.write("ws-peer-client: no symbol \(name)\n".data(using: .utf8)!)
        exit(2)
    }
    return unsafeBitCast(pointer, to: type)
}
let epollCreate1 = symbol("epoll_create1", as: (@convention(c) (Int32) -> Int32).self)
let epollCtl = symbol("epoll_ctl", as: (@convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32).self)
let epollWait = symbol("epoll_wait", as: (@convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32).self)
let memmemFunction = symbol("memmem", as: (@convention(c) (UnsafeRawPointer?, Int, UnsafeRawPointer?, Int) -> UnsafeMutableRawPointer?).self)
let epollIn: UInt32 = 0x001
let epollCtlAdd: Int32 = 1
let epollCtlDel: Int32 = 2
#if arch(x86_64)
let epollEventSize = 12, epollDataOffset = 4  // struct epoll_event is packed on x86_64
#else
let epollEventSize = 16, epollDataOffset = 8
#endif

func nowMicros() -> Int {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return spec.tv_sec * 1_000_000 + spec.tv_nsec / 1000
}

func say(_ text: String) {
    FileHandle.standardOutput.write((text + "\n").data(using: .utf8)!)
}

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(("ws-peer-client: " + text + "\n").data(using: .utf8)!)
    exit(2)
}

// MARK: - Options

struct Options {
    var host = "127.0.0.1"
    var port = 0
    var path = "/ws/odds"
    var subscribe = ""
    var connections = 1000
    var events = 100
    var prefix = "BENCH"
    var threads = 2
    var pollMicros = 1000
    var doneFile = ""
    var drainSeconds = 10.0
    var rampSeconds = 180.0

    init(arguments: [String]) {
        var index = 1
        func value() -> String {
            index += 1
            guard index < arguments.count else { fail("\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        func number(_ text: String) -> Int {
            guard let number = Int(text) else { fail("not a number: \(text)") }
            return number
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--host": host = value()
            case "--port": port = number(value())
            case "--path": path = value()
            case "--subscribe": subscribe = value()
            case "--connections": connections = number(value())
            case "--events": events = number(value())
            case "--prefix": prefix = value()
            case "--threads": threads = number(value())
            case "--poll-us": pollMicros = number(value())
            case "--done-file": doneFile = value()
            case "--drain": drainSeconds = Double(value()) ?? 10
            case "--ramp-timeout": rampSeconds = Double(value()) ?? 180
            default: fail("unknown argument \(arguments[index])")
            }
            index += 1
        }
        guard port > 0, connections > 0, events > 0, threads > 0, !doneFile.isEmpty else {
            fail("usage: ws-peer-client --port P --path TEMPLATE [--subscribe TEMPLATE] --connections N --events E --done-file F")
        }
    }
}

// MARK: - Latency histogram (log-linear, 1/1024 relative precision, values in µs)

struct LatencyHistogram {
    static let linear = 2048
    static let perOctave = 1024
    var counts = [Int](repeating: 0, count: linear + 26 * perOctave)
    var total = 0
    var sum = 0
    var maximum = 0

    static func index(_ value: Int) -> Int {
        if value < linear { return value }
        let shift = (Int.bitWidth - 1 - value.leadingZeroBitCount) - 10
        return linear + (shift - 1) * perOctave + ((value >> shift) - perOctave)
    }

    /// The highest value that lands in bucket `index` (what HdrHistogram reports).
    static func highest(_ index: Int) -> Int {
        if index < linear { return index }
        let shift = (index - linear) / perOctave + 1
        let mantissa = (index - linear) % perOctave + perOctave
        return ((mantissa + 1) << shift) - 1
    }

    mutating func record(_ micros: Int) {
        let value = min(max(0, micros), 600_000_000)
        counts[Self.index(value)] += 1
        total += 1
        sum += value
        if value > maximum { maximum = value }
    }

    mutating func add(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        total += other.total
        sum += other.sum
        maximum = max(maximum, other.maximum)
    }

    func percentile(_ percent: Double) -> Int {
        guard total > 0 else { return 0 }
        let target = max(1, Int((percent / 100 * Double(total)).rounded(.up)))
        var seen = 0
        for index in counts.indices {
            seen += counts[index]
            if seen >= target { return min(Self.highest(index), maximum) }
        }
        return maximum
    }
}

// MARK: - Shared counters

final class Counters: Sendable {
    let connected = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let running = Atomic<Int>(0)
}

let snapshotMarker = Array(#""type":"snapshot""#.utf8)
let sourceMarker = Array(#""source":"bench:"#.utf8)

func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
    guard bytes.count >= needle.count, let base = bytes.baseAddress else { return nil }
    return needle.withUnsafeBytes { marker -> Int? in
        guard let hit = memmemFunction(base, bytes.count, marker.baseAddress, marker.count) else { return nil }
        return UnsafeRawPointer(hit) - base + marker.count
    }
}

// MARK: - One thread's connections

final class Worker: @unchecked Sendable {
    struct Connection {
        var pending: [UInt8] = []
        var sawSnapshot = false
    }

    let options: Options
    let counters: Counters
    let indices: Range<Int>
    var histogram = LatencyHistogram()
    var frameBytes = 0
    private var connections: [Connection?] = []
    private var subscribeFrames: [Int32: [UInt8]] = [:]

    init(options: Options, counters: Counters, indices: Range<Int>) {
        self.options = options
        self.counters = counters
        self.indices = indices
    }

    func eventId(_ index: Int) -> String { "\(options.prefix)_\(index % options.events)" }

    func run() {
        let epoll = epollCreate1(0)
        guard epoll >= 0 else { fail("epoll_create1 failed") }
        defer { close(epoll) }
        for index in indices {
            if counters.stopping.load(ordering: .relaxed) { break }
            let event = eventId(index)
            guard let (fd, leftover) = handshake(path: options.path.replacingOccurrences(of: "{event}", with: event)) else {
                counters.failed.add(1, ordering: .relaxed)
                continue
            }
            counters.connected.add(1, ordering: .relaxed)
            if !options.subscribe.isEmpty {
                sendFrame(fd: fd, opcode: 0x1, payload: Array(options.subscribe.replacingOccurrences(of: "{event}", with: event).utf8))
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var registration = [UInt8](repeating: 0, count: epollEventSize)
            registration.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: epollIn, toByteOffset: 0, as: UInt32.self)
                raw.storeBytes(of: Int64(fd), toByteOffset: epollDataOffset, as: Int64.self)
                _ = epollCtl(epoll, epollCtlAdd, fd, raw.baseAddress)
            }
            if connections.count <= Int(fd) {
                connections += [Connection?](repeating: nil, count: Int(fd) + 1 - connections.count)
            }
            // Frames that came with the 101 response (Nchan sends its stored message at once).
            var connection = Connection()
            var delivered = 0
            var open = true
            let consumed = leftover.withUnsafeBytes {
                parse($0, connection: &connection, fd: fd, now: nowMicros(), measured: &delivered, open: &open)
            }
            connection.pending = Array(leftover[consumed...])
            if delivered > 0 { counters.delivered.add(delivered, ordering: .relaxed) }
            connections[Int(fd)] = connection
            if !open { drop(fd: fd, epoll: epoll) }
        }
        let maxEvents = 1024
        var events = [UInt8](repeating: 0, count: maxEvents * epollEventSize)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let pause = useconds_t(options.pollMicros)
        while !counters.stopping.load(ordering: .relaxed) {
            let ready = Int(events.withUnsafeMutableBytes { epollWait(epoll, $0.baseAddress, Int32(maxEvents), 0) })
            if ready <= 0 {
                usleep(pause)
                continue
            }
            var delivered = 0
            for slot in 0..<ready {
                let fd = events.withUnsafeBytes { Int32(truncatingIfNeeded: $0.loadUnaligned(fromByteOffset: slot * epollEventSize + epollDataOffset, as: Int64.self)) }
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
                    drop(fd: fd, epoll: epoll)
                    continue
                }
                guard count > 0, Int(fd) < connections.count, var connection = connections[Int(fd)] else { continue }
                connections[Int(fd)] = nil  // unique while parsing: appends do not copy
                let now = nowMicros()
                var open = true
                if connection.pending.isEmpty {
                    let consumed = buffer.withUnsafeBytes {
                        parse(UnsafeRawBufferPointer(rebasing: $0[0..<count]), connection: &connection, fd: fd, now: now,
                              measured: &delivered, open: &open)
                    }
                    if open, consumed < count { connection.pending.append(contentsOf: buffer[consumed..<count]) }
                } else {
                    connection.pending.append(contentsOf: buffer[0..<count])
                    var pending = connection.pending
                    connection.pending = []
                    let consumed = pending.withUnsafeBytes {
                        parse($0, connection: &connection, fd: fd, now: now, measured: &delivered, open: &open)
                    }
                    pending.removeFirst(consumed)
                    connection.pending = pending
                }
                if open {
                    connections[Int(fd)] = connection
                } else {
                    connections[Int(fd)] = connection
                    drop(fd: fd, epoll: epoll)
                }
            }
            if delivered > 0 { counters.delivered.add(delivered, ordering: .relaxed) }
            // A short pass (few sockets ready) means the backlog is gone: wait for the next tick.
            if ready < maxEvents / 4 { usleep(pause) }
        }
        for fd in connections.indices where connections[fd] != nil { close(Int32(fd)) }
    }

    private func drop(fd: Int32, epoll: Int32) {
        guard Int(fd) < connections.count, connections[Int(fd)] != nil else { return }
        if !counters.stopping.load(ordering: .relaxed) { counters.closed.add(1, ordering: .relaxed) }
        _ = epollCtl(epoll, epollCtlDel, fd, nil)
        close(fd)
        connections[Int(fd)] = nil
    }

    /// Handles the complete frames at the start of `bytes`; returns how many bytes they took.
    private func parse(_ bytes: UnsafeRawBufferPointer, connection: inout Connection, fd: Int32, now: Int,
                       measured: inout Int, open: inout Bool) -> Int {
        var offset = 0
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
            case 0x1, 0x2:
                if find(snapshotMarker, in: payload) != nil {
                    if !connection.sawSnapshot {
                        connection.sawSnapshot = true
                        counters.subscribed.add(1, ordering: .relaxed)
                    }
                } else if let start = find(sourceMarker, in: payload) {
                    var sent = 0
                    var index = start
                    while index < payload.count, payload[index] >= 48, payload[index] <= 57 {
                        sent = sent * 10 + Int(payload[index] - 48)
                        index += 1
                    }
                    histogram.record(now - sent)
                    frameBytes += length
                    measured += 1
                }
            case 0x9:
                sendFrame(fd: fd, opcode: 0xA, payload: Array(payload))
            case 0x8:
                open = false
                return offset
            default:
                break
            }
        }
        return offset
    }

    /// Blocking connect and upgrade; the socket and whatever was read past the 101 response.
    private func handshake(path: String) -> (Int32, [UInt8])? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(options.port).bigEndian)
        address.sin_addr.s_addr = inet_addr(options.host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); return nil }
        var keyBytes = [UInt8](repeating: 0, count: 16)
        for index in keyBytes.indices { keyBytes[index] = UInt8.random(in: 0...255) }
        let key = Data(keyBytes).base64EncodedString()
        let request = "GET \(path) HTTP/1.1\r\nHost: \(options.host):\(options.port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        guard writeAll(fd: fd, Array(request.utf8)) else { close(fd); return nil }
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
        frame += [0, 0, 0, 0]
        frame += payload
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

// MARK: - Main

func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func seconds(since start: Double) -> Double { Date().timeIntervalSince1970 - start }

let options = Options(arguments: CommandLine.arguments)
raiseFileLimit()
let counters = Counters()
let perThread = (options.connections + options.threads - 1) / options.threads
let workers = (0..<options.threads).map { thread in
    Worker(options: options, counters: counters,
           indices: min(options.connections, thread * perThread)..<min(options.connections, (thread + 1) * perThread))
}
for worker in workers {
    counters.running.add(1, ordering: .relaxed)
    Thread.detachNewThread {
        worker.run()
        counters.running.subtract(1, ordering: .relaxed)
    }
}

let rampStart = Date().timeIntervalSince1970
while counters.subscribed.load(ordering: .relaxed) + counters.failed.load(ordering: .relaxed)
        + counters.closed.load(ordering: .relaxed) < options.connections, seconds(since: rampStart) < options.rampSeconds {
    usleep(50_000)
}
say("ws-peer-client: subscribed \(counters.subscribed.load(ordering: .relaxed)) of \(options.connections)"
    + " (connected \(counters.connected.load(ordering: .relaxed)), failed \(counters.failed.load(ordering: .relaxed)),"
    + " closed \(counters.closed.load(ordering: .relaxed))) in \(String(format: "%.1f", seconds(since: rampStart))) s")
let cpuAtStart = cpuSeconds()

// Publishing runs elsewhere; the orchestrator writes the expected delivery count when it is over.
var expected = -1
while expected < 0 {
    if let text = try? String(contentsOfFile: options.doneFile, encoding: .utf8),
       let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
        expected = value
    } else {
        usleep(20_000)
    }
}
let drainStart = Date().timeIntervalSince1970
while counters.delivered.load(ordering: .relaxed) < expected, seconds(since: drainStart) < options.drainSeconds {
    usleep(20_000)
}
let drained = seconds(since: drainStart)
let cpu = cpuSeconds() - cpuAtStart
counters.stopping.store(true, ordering: .relaxed)
while counters.running.load(ordering: .relaxed) > 0 { usleep(1000) }

var histogram = LatencyHistogram()
var frameBytes = 0
for worker in workers {
    histogram.add(worker.histogram)
    frameBytes += worker.frameBytes
}
func ms(_ micros: Int) -> String { String(format: "%.3f", Double(micros) / 1000) }
let delivered = counters.delivered.load(ordering: .relaxed)
say("""
    {"connections":\(options.connections),"subscribed":\(counters.subscribed.load(ordering: .relaxed)),\
    "failed":\(counters.failed.load(ordering: .relaxed)),"closed":\(counters.closed.load(ordering: .relaxed)),\
    "delivered":\(delivered),"expected":\(expected),"p50_ms":\(ms(histogram.percentile(50))),\
    "p90_ms":\(ms(histogram.percentile(90))),"p99_ms":\(ms(histogram.percentile(99))),\
    "p999_ms":\(ms(histogram.percentile(99.9))),"max_ms":\(ms(histogram.maximum)),\
    "mean_ms":\(ms(histogram.total > 0 ? histogram.sum / histogram.total : 0)),\
    "frame_bytes":\(delivered > 0 ? frameBytes / delivered : 0),"drain_s":\(String(format: "%.2f", drained)),\
    "client_cpu_s":\(String(format: "%.2f", cpu))}
    """)
exit(0)
