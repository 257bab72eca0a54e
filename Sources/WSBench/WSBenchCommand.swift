import ArgumentParser
import Contracts
import Foundation
import Histogram
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix
import Redis
import Synchronization

/// ws-bench: N WebSocket clients of odds-service, each subscribed to one of E events; updates
/// written to Redis and published on the broadcast channel at a fixed rate (HSET + PUBLISH of a
/// BroadcastMessage, as the processor's script does). Each update carries its publish time in
/// microseconds in `source` ("bench:<µs>"), so delivery latency is measured publish → frame
/// received, with microsecond resolution. Prints delivered/expected, p50/p99/p999 and the
/// odds-service RSS (from /proc, with --service-pid).
@main
struct WSBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ws-bench", abstract: "WebSocket fan-out load generator for odds-service.")

    @Option(help: "odds-service WebSocket URL.") var url = "ws://127.0.0.1:8080/ws/odds"
    @Option(help: "Concurrent WebSocket connections.") var connections = 10_000
    @Option(help: "Events; connection i subscribes to event i % events.") var events = 100
    @Option(help: "Markets per event.") var markets = 3
    @Option(help: "Updates published per second (all events).") var rate = 2_000
    @Option(help: "Seconds of publishing.") var duration = 20
    @Option(help: "Redis address (REDIS_ADDR style).") var redisAddr = ProcessInfo.processInfo.environment["REDIS_ADDR"] ?? "127.0.0.1:6380"
    @Option(help: "Broadcast channel.") var channel = ProcessInfo.processInfo.environment["REDIS_PUBSUB_CHANNEL"] ?? RedisKeys.broadcastChannel
    @Option(help: "Client event-loop threads.") var threads = 2
    @Option(help: "Connections opened concurrently while ramping up.") var connectConcurrency = 256
    @Option(help: "odds-service pid, to report its RSS.") var servicePid: Int32?
    @Option(help: "Event id prefix.") var eventPrefix = "BENCH"
    @Option(help: "Seconds to wait for stragglers after publishing stops.") var drainSeconds = 10
    @Option(help: "Client implementation: raw (NIO handler, cheap; default), poll (plain sockets polled every --poll-interval-us, see PollingClients.swift) or hummingbird (WSClient, one task per connection).")
    var client = "raw"
    @Option(help: "--client poll: microseconds between polls when nothing is pending.") var pollIntervalUs = 1000
    @Option(help: "both | clients | publisher | follow. follow: subscribers of a live pipeline measuring updated_at → receipt (see FollowRole.swift). Run clients and publisher as two processes so the publisher is not starved by the clients on a small machine: start `--role clients`, wait for 'subscribed', then start `--role publisher` with the same --events/--markets/--rate/--duration.")
    var role = "both"
    @Option(help: "Follow role: event ids to subscribe to, comma-separated (connection i follows ids i*k ..< i*k+k).")
    var eventIds = ""
    @Option(help: "Follow role: events per connection.") var eventsPerConnection = 1
    @Option(help: "Follow role: seconds before measuring.") var warmup = 5
    @Option(help: "Follow role: write the summary (latency, order violations, newest version per market) here.")
    var json: String?

    func run() async throws {
        raiseFileLimit()
        guard ["both", "clients", "publisher", "follow"].contains(role) else {
            throw ValidationError("--role must be both, clients, publisher or follow")
        }
        if role == "follow" {
            let ids = eventIds.split(separator: ",").map(String.init)
            try await FollowRun(url: url, eventIds: ids, connections: connections, eventsPerConnection: eventsPerConnection,
                                threads: threads, warmup: warmup, duration: duration, drain: drainSeconds,
                                jsonPath: json).run()
            return
        }
        let logger = { var logger = Logger(label: "ws-bench"); logger.logLevel = .error; return logger }()
        let stats = BenchStats(shards: 16)
        let eventIds = (0..<events).map { "\(eventPrefix)_\($0)" }
        let redis = try RedisClient(address: redisAddr)
        let publisher = Publisher(redis: redis, channel: channel, eventIds: eventIds, markets: markets)
        let rssMonitor = RSSMonitor(pid: servicePid)

        if role == "publisher" {
            let published = try await publisher.publish(rate: rate, seconds: duration, followers: [Int](repeating: 0, count: events), rss: rssMonitor)
            say("ws-bench publisher: \(published.count) updates in \(published.elapsed) (\(String(format: "%.0f", Double(published.count) / published.elapsed.seconds))/s, target \(rate)/s)")
            await redis.shutdown()
            return
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        try await publisher.seed()
        say("ws-bench: seeded \(events) events x \(markets) markets; opening \(connections) connections to \(url)")
        let pollers: PollingClients? = client == "poll"
            ? try PollingClients(url: url, stats: stats, pollInterval: .microseconds(pollIntervalUs)) : nil
        pollers?.start(eventIds: (0..<connections).map { [eventIds[$0 % eventIds.count]] }, threads: threads)
        let clients = Task { [client] in
            guard client != "poll" else { return }
            await withTaskGroup(of: Void.self) { tasks in
                for index in 0..<connections {
                    if index >= connectConcurrency {
                        // Ramp: keep at most `connectConcurrency` handshakes in flight.
                        while stats.connected.load(ordering: .relaxed) + stats.failed.load(ordering: .relaxed) < index - connectConcurrency {
                            try? await Task.sleep(for: .milliseconds(2))
                        }
                    }
                    let eventId = eventIds[index % eventIds.count]
                    if client == "raw" {
                        do {
                            try await RawWebSocketBench.connect(url: url, eventIds: [eventId], shard: index % stats.shards,
                                                                group: group, stats: stats)
                        } catch {
                            stats.failed.add(1, ordering: .relaxed)
                        }
                    } else {
                        tasks.addTask {
                            await runClient(index: index, eventId: eventId, group: group, stats: stats, logger: logger)
                        }
                    }
                }
            }
        }
        let rampStart = ContinuousClock.now
        while stats.subscribed.load(ordering: .relaxed) + stats.failed.load(ordering: .relaxed) < connections {
            try await Task.sleep(for: .milliseconds(100))
            if ContinuousClock.now - rampStart > .seconds(120) { break }
        }
        let subscribed = stats.subscribed.load(ordering: .relaxed)
        say("ws-bench: \(subscribed) connections subscribed (\(stats.failed.load(ordering: .relaxed)) failed) in \(ContinuousClock.now - rampStart)")
        rssMonitor.sample()

        // Per event, how many clients follow it: expected deliveries = sum over published updates.
        var followers = [Int](repeating: 0, count: events)
        for index in 0..<connections { followers[index % events] += 1 }
        stats.resetLatency()
        var published = Publisher.Result()
        if role == "both" {
            published = try await publisher.publish(rate: rate, seconds: duration, followers: followers, rss: rssMonitor)
        } else {
            // The publisher runs elsewhere; its update order is deterministic, so is the expectation.
            published.count = rate * duration
            for index in 0..<published.count { published.expectedDeliveries += followers[(index % (events * markets)) % events] }
            while stats.delivered.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(20)) }
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(duration) {
                try await Task.sleep(for: .seconds(1))
                rssMonitor.sample()
            }
            published.elapsed = ContinuousClock.now - start
        }
        let expected = published.expectedDeliveries
        let drainStart = ContinuousClock.now
        while stats.delivered.load(ordering: .relaxed) < expected, ContinuousClock.now - drainStart < .seconds(drainSeconds) {
            try await Task.sleep(for: .milliseconds(100))
        }
        rssMonitor.sample()
        let histogram = stats.mergedLatency()
        let delivered = stats.delivered.load(ordering: .relaxed)
        func ms(_ percentile: Double) -> String { String(format: "%.2f ms", Double(histogram.valueAtPercentile(percentile)) / 1000) }
        say("""
            ws-bench results
              connections        \(connections) (\(subscribed) subscribed, \(stats.failed.load(ordering: .relaxed)) failed, \(stats.closed.load(ordering: .relaxed)) closed by server)
              events/markets     \(events) / \(markets)
              published          \(published.count) updates in \(published.elapsed) (target \(rate)/s)
              delivered          \(delivered) / \(expected) expected (\(String(format: "%.3f", Double(delivered) / Double(max(1, expected)) * 100))%)
              latency publish→recv p50 \(ms(50))  p90 \(ms(90))  p99 \(ms(99))  p99.9 \(ms(99.9))  max \(String(format: "%.2f ms", Double(histogram.max) / 1000))
              odds-service RSS   \(rssMonitor.report())
            """)
        stats.stopping.store(true, ordering: .relaxed)
        pollers?.stop()
        clients.cancel()
        await redis.shutdown()
        try? await group.shutdownGracefully()
    }

    func runClient(index: Int, eventId: String, group: MultiThreadedEventLoopGroup, stats: BenchStats, logger: Logger) async {
        let shard = index % stats.shards
        do {
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), eventLoopGroup: group, logger: logger) { inbound, outbound, _ in
                stats.connected.add(1, ordering: .relaxed)
                try await outbound.write(.text(#"{"type":"subscribe","eventId":"\#(eventId)"}"#))
                var sawSnapshot = false
                for try await frame in inbound {
                    let data = frame.data
                    if !sawSnapshot, Self.contains(data, Self.snapshotMarker) {
                        sawSnapshot = true
                        stats.subscribed.add(1, ordering: .relaxed)
                        continue
                    }
                    if let sentMicros = Self.benchMicros(data) {
                        stats.record(shard: shard, latencyMicros: max(0, Self.nowMicros() - sentMicros))
                    }
                }
            }
            if !stats.stopping.load(ordering: .relaxed) { stats.closed.add(1, ordering: .relaxed) }
        } catch {
            if !stats.stopping.load(ordering: .relaxed) { stats.failed.add(1, ordering: .relaxed) }
        }
    }

    static let snapshotMarker = Array(#""type":"snapshot""#.utf8)
    static let sourceMarker = Array(#""source":"bench:"#.utf8)

    static func contains(_ buffer: ByteBuffer, _ marker: [UInt8]) -> Bool {
        buffer.withUnsafeReadableBytes { find(marker, in: $0) } != nil
    }

    /// The publish time written in `source` ("bench:<µs>").
    static func benchMicros(_ buffer: ByteBuffer) -> Int64? {
        buffer.withUnsafeReadableBytes { benchMicros($0) }
    }

    /// Offset just past the first occurrence of `marker` (a plain byte loop: the generic
    /// `firstRange(of:)` is unspecialized and dominated the client's CPU profile).
    static func find(_ marker: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        marker.withUnsafeBufferPointer { needle -> Int? in
            let count = bytes.count, length = needle.count
            guard length > 0, count >= length else { return nil }
            let first = needle[0]
            var index = 0
            while index <= count - length {
                if bytes[index] == first {
                    var matched = 1
                    while matched < length && bytes[index + matched] == needle[matched] { matched += 1 }
                    if matched == length { return index + length }
                }
                index += 1
            }
            return nil
        }
    }

    static func benchMicros(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard var index = find(sourceMarker, in: bytes) else { return nil }
        var value: Int64 = 0
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            value = value * 10 + Int64(bytes[index] - 48)
            index += 1
        }
        return value
    }

    static func nowMicros() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    func raiseFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

final class BenchStats: Sendable {
    let shards: Int
    let connected = Atomic<Int>(0)
    let subscribed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let closed = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    /// Follow role: record latency only inside the measurement window.
    let measuring = Atomic<Bool>(false)
    private let latency: [LatencyShard]

    final class LatencyShard: Sendable {
        let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000))
    }

    init(shards: Int) {
        self.shards = shards
        latency = (0..<shards).map { _ in LatencyShard() }
    }

    func record(shard: Int, latencyMicros: Int64) {
        delivered.add(1, ordering: .relaxed)
        recordLatency(shard: shard, latencyMicros: latencyMicros)
    }

    /// A latency sample without counting the delivery (the caller adds to `delivered` in bulk).
    func recordLatency(shard: Int, latencyMicros: Int64) {
        latency[shard].histogram.withLock { _ = $0.record(UInt64(min(latencyMicros, 60_000_000))) }
    }

    func resetLatency() {
        delivered.store(0, ordering: .relaxed)
        for shard in latency { shard.histogram.withLock { $0 = Histogram<UInt64>(highestTrackableValue: 60_000_000) } }
    }

    func mergedLatency() -> Histogram<UInt64> {
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        for shard in latency { shard.histogram.withLock { merged.add($0) } }
        return merged
    }
}

/// Writes and publishes updates at a fixed rate, in 10 ms ticks, one pipeline per tick.
struct Publisher {
    let redis: RedisClient
    let channel: String
    let eventIds: [String]
    let markets: Int

    struct Result {
        var count = 0
        var expectedDeliveries = 0
        var elapsed: Duration = .zero
    }

    var marketNames: [String] { (0..<markets).map { ["1x2", "ou_2_5", "btts"].indices.contains($0) ? ["1x2", "ou_2_5", "btts"][$0] : "m\($0)" } }

    func update(event: Int, market: Int, version: Int64) -> OddsUpdate {
        let name = marketNames[market]
        let odds: [String: Double] = switch name {
        case "1x2": ["home": 2.1, "draw": 3.3, "away": 3.6]
        case "ou_2_5": ["over": 1.9, "under": 1.95]
        case "btts": ["yes": 1.8, "no": 2.0]
        default: ["a": 2.0, "b": 1.9]
        }
        return OddsUpdate(eventId: eventIds[event], homeTeam: "Home \(event)", awayTeam: "Away \(event)", market: name,
                          odds: odds, status: .open, updatedAt: .now(),
                          source: "bench:\(WSBenchCommand.nowMicros())", version: version)
    }

    func commands(for update: OddsUpdate, publish: Bool) throws -> [[RedisArgument]] {
        var commands: [[RedisArgument]] = [
            ["HSET", .string(RedisKeys.currentOdds(eventId: update.eventId)), .string(update.market), .bytes(Array(update.jsonData()))],
            ["ZADD", "odds:events", .integer(Int(update.updatedAt.millisecondsSinceEpoch)), .string(update.eventId)],
        ]
        if publish {
            commands.append(["PUBLISH", .string(channel), .bytes(Array(try ContractCoding.encoder.encode(BroadcastMessage(payload: update))))])
        }
        return commands
    }

    /// Versions grow with wall time (ms × 1000), so a new run never goes below what a previous
    /// run left in Redis (which clients receive as their snapshot).
    static func versionBase() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000) * 1000
    }

    /// A current version of every market, written without publishing (snapshot and REST data).
    func seed() async throws {
        let version = Self.versionBase()
        for event in eventIds.indices {
            for market in 0..<markets {
                for result in try await redis.pipeline(try commands(for: update(event: event, market: market, version: version), publish: false)) {
                    _ = try result.get()
                }
            }
        }
    }

    func publish(rate: Int, seconds: Int, followers: [Int], rss: RSSMonitor) async throws -> Result {
        var result = Result()
        let total = rate * seconds
        var versions = [Int64](repeating: Publisher.versionBase(), count: eventIds.count * markets)
        let start = ContinuousClock.now
        var next = 0
        var lastSample = start
        while next < total {
            let due = min(total, Int(Double(rate) * (ContinuousClock.now - start).seconds) + 1)
            if due > next {
                var pipeline: [[RedisArgument]] = []
                while next < due {
                    let slot = next % versions.count
                    let event = slot % eventIds.count
                    let market = slot / eventIds.count
                    versions[slot] += 1
                    pipeline += try commands(for: update(event: event, market: market, version: versions[slot]), publish: true)
                    result.expectedDeliveries += followers[event]
                    next += 1
                }
                for reply in try await redis.pipeline(pipeline) { _ = try reply.get() }
            }
            if ContinuousClock.now - lastSample > .seconds(1) {
                rss.sample()
                lastSample = .now
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        result.count = total
        result.elapsed = ContinuousClock.now - start
        return result
    }
}

/// Peak VmRSS of a process, from /proc/<pid>/status.
final class RSSMonitor: Sendable {
    let pid: Int32?
    private let peakKiB = Atomic<Int>(0)
    private let lastKiB = Atomic<Int>(0)

    init(pid: Int32?) { self.pid = pid }

    func sample() {
        guard let pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kib = Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
            lastKiB.store(kib, ordering: .relaxed)
            if kib > peakKiB.load(ordering: .relaxed) { peakKiB.store(kib, ordering: .relaxed) }
        }
    }

    func report() -> String {
        guard pid != nil else { return "n/a (pass --service-pid)" }
        return String(format: "peak %.1f MB, last %.1f MB", Double(peakKiB.load(ordering: .relaxed)) / 1024,
                      Double(lastKiB.load(ordering: .relaxed)) / 1024)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Unbuffered line output (a redirected stdout is block-buffered; scripts wait for these lines).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
