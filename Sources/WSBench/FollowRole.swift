import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// `--role follow`: subscribers of a live pipeline (no publisher of its own). Each delta's
/// latency is measured from its `updated_at` (set by the supplier, millisecond resolution) to
/// receipt, and per connection every (event, market) must arrive with strictly increasing
/// versions. At the end it reports the newest version seen per market, so the caller can
/// check that the newest version of every market reached the subscribers.
final class FollowerConnection: Sendable {
    private struct State {
        var lastVersion: [String: Int64] = [:]
        var nonIncreasing = 0
        var snapshots = 0
    }
    private let state = Mutex(State())

    func handle(_ payload: ByteBuffer, shard: Int, stats: BenchStats) {
        let isDelta = FrameScan.endsWith(payload, Self.oddsSuffix)
        let now = WSBenchCommand.nowMicros()
        var markets: [FrameScan.Market] = []
        FrameScan.markets(in: payload) { markets.append($0) }
        let snapshotCount = state.withLock { state -> Int in
            if !isDelta { state.snapshots += 1 }
            for market in markets {
                if let last = state.lastVersion[market.key], market.version <= last {
                    state.nonIncreasing += 1
                } else {
                    state.lastVersion[market.key] = market.version
                }
            }
            return state.snapshots
        }
        if !isDelta {
            if snapshotCount == 1 { stats.subscribed.add(1, ordering: .relaxed) }
            return
        }
        if stats.measuring.load(ordering: .relaxed), let market = markets.first {
            stats.record(shard: shard, latencyMicros: max(0, now - market.updatedAtMillis * 1000))
        }
    }

    var nonIncreasing: Int { state.withLock { $0.nonIncreasing } }
    var lastVersions: [String: Int64] { state.withLock { $0.lastVersion } }

    static let oddsSuffix = Array(#""type":"odds"}"#.utf8)
}

/// Pulls (event_id, market, version, updated_at) out of snapshot and odds frames without a
/// JSON decoder: the server writes sorted keys, so within one update they come in the order
/// event_id, market, updated_at, version.
enum FrameScan {
    struct Market {
        var key: String
        var version: Int64
        var updatedAtMillis: Int64
    }

    static let eventIdMarker = Array(#""event_id":""#.utf8)
    static let marketMarker = Array(#""market":""#.utf8)
    static let updatedAtMarker = Array(#""updated_at":""#.utf8)
    static let versionMarker = Array(#""version":"#.utf8)

    static func endsWith(_ buffer: ByteBuffer, _ suffix: [UInt8]) -> Bool {
        guard buffer.readableBytes >= suffix.count else { return false }
        return buffer.getBytes(at: buffer.readerIndex + buffer.readableBytes - suffix.count, length: suffix.count) == suffix
    }

    static func markets(in buffer: ByteBuffer, _ body: (Market) -> Void) {
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while let eventStart = find(eventIdMarker, in: bytes, from: offset) {
                let eventEnd = scanString(bytes, from: eventStart)
                guard let marketStart = find(marketMarker, in: bytes, from: eventEnd) else { return }
                let marketEnd = scanString(bytes, from: marketStart)
                guard let timeStart = find(updatedAtMarker, in: bytes, from: marketEnd),
                      let versionStart = find(versionMarker, in: bytes, from: timeStart) else { return }
                var version: Int64 = 0
                var index = versionStart
                while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                    version = version * 10 + Int64(bytes[index] - 48)
                    index += 1
                }
                let key = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[eventStart..<eventEnd]), as: UTF8.self) + "/"
                    + String(decoding: UnsafeRawBufferPointer(rebasing: bytes[marketStart..<marketEnd]), as: UTF8.self)
                body(Market(key: key, version: version, updatedAtMillis: rfc3339Millis(bytes, from: timeStart)))
                offset = index
            }
        }
    }

    private static func scanString(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var index = start
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") { index += 1 }
        return index
    }

    private static func find(_ marker: [UInt8], in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        let length = marker.count
        guard bytes.count >= length else { return nil }
        var index = start
        while index <= bytes.count - length {
            if bytes[index] == marker[0] {
                var matched = 1
                while matched < length && bytes[index + matched] == marker[matched] { matched += 1 }
                if matched == length { return index + length }
            }
            index += 1
        }
        return nil
    }

    /// "YYYY-MM-DDTHH:MM:SS.mmmZ" → milliseconds since the epoch (UTC, as the contract writes it).
    static func rfc3339Millis(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int64 {
        func number(_ offset: Int, _ digits: Int) -> Int64 {
            var value: Int64 = 0
            for index in start + offset..<min(bytes.count, start + offset + digits) {
                value = value * 10 + Int64(bytes[index] &- 48)
            }
            return value
        }
        guard start + 23 <= bytes.count else { return 0 }
        let year = number(0, 4), month = number(5, 2), day = number(8, 2)
        // Days from civil (proleptic Gregorian), era-based.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86_400 + number(11, 2) * 3600 + number(14, 2) * 60 + number(17, 2)
        return seconds * 1000 + number(20, 3)
    }
}

/// Runs the follow role: connect, wait for every snapshot, warm up, measure, drain, report.
struct FollowRun {
    let url: String
    let eventIds: [String]
    let connections: Int
    let eventsPerConnection: Int
    let threads: Int
    let warmup: Int
    let duration: Int
    let drain: Int
    let jsonPath: String?

    func run() async throws {
        guard !eventIds.isEmpty else { throw FollowError("--event-ids is required for --role follow") }
        let stats = BenchStats(shards: 16)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var followers: [FollowerConnection] = []
        let rampStart = ContinuousClock.now
        for index in 0..<connections {
            let follower = FollowerConnection()
            followers.append(follower)
            let events = (0..<eventsPerConnection).map { eventIds[(index * eventsPerConnection + $0) % eventIds.count] }
            do {
                try await RawWebSocketBench.connect(url: url, eventIds: events, shard: index % stats.shards, group: group,
                                                    stats: stats, follower: follower)
            } catch {
                stats.failed.add(1, ordering: .relaxed)
            }
            // Keep at most 256 upgrades in flight.
            while index - stats.subscribed.load(ordering: .relaxed) - stats.failed.load(ordering: .relaxed) > 256 {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        while stats.subscribed.load(ordering: .relaxed) + stats.failed.load(ordering: .relaxed) < connections,
              ContinuousClock.now - rampStart < .seconds(60) {
            try await Task.sleep(for: .milliseconds(50))
        }
        say("ws-bench follow: \(stats.subscribed.load(ordering: .relaxed)) subscribed, \(stats.failed.load(ordering: .relaxed)) failed, in \(ContinuousClock.now - rampStart)")
        try await Task.sleep(for: .seconds(warmup))
        stats.resetLatency()
        stats.measuring.store(true, ordering: .relaxed)
        say("ws-bench follow: measuring")
        try await Task.sleep(for: .seconds(duration))
        stats.measuring.store(false, ordering: .relaxed)
        let histogram = stats.mergedLatency()
        let measured = stats.delivered.load(ordering: .relaxed)
        say("ws-bench follow: measured; draining \(drain) s")
        try await Task.sleep(for: .seconds(drain))

        var newest: [String: Int64] = [:]
        var nonIncreasing = 0
        for follower in followers {
            nonIncreasing += follower.nonIncreasing
            for (key, version) in follower.lastVersions where version > newest[key] ?? -1 { newest[key] = version }
        }
        func micros(_ percentile: Double) -> UInt64 { histogram.valueAtPercentile(percentile) }
        let summary: [String: Any] = [
            "connections": connections,
            "subscribed": stats.subscribed.load(ordering: .relaxed),
            "failed": stats.failed.load(ordering: .relaxed),
            "closed_by_server": stats.closed.load(ordering: .relaxed),
            "deltas_measured": measured,
            "deltas_per_second": Double(measured) / Double(max(1, duration)),
            "latency_us": ["p50": micros(50), "p90": micros(90), "p99": micros(99), "p999": micros(99.9),
                           "max": histogram.max],
            "non_increasing": nonIncreasing,
            "newest_versions": newest,
        ]
        let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
        if let jsonPath { try data.write(to: URL(fileURLWithPath: jsonPath)) }
        say(String(format: "ws-bench follow: %d deltas in %d s, latency p50 %.2f ms p99 %.2f ms p99.9 %.2f ms, non-increasing %d",
                   measured, duration, Double(micros(50)) / 1000, Double(micros(99)) / 1000, Double(micros(99.9)) / 1000,
                   nonIncreasing))
        stats.stopping.store(true, ordering: .relaxed)
        try? await group.shutdownGracefully()
    }
}

struct FollowError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
