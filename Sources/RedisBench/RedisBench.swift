import ArgumentParser
import Foundation
import Histogram
import Logging
import Redis
import SocketSupport

@main
struct RedisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis-bench",
        abstract: "Measures the Redis layer: pipelined SET/HSET throughput, the Lua compare-and-set path, and single-command latency."
    )

    @Option(help: "Redis address (host:port or redis:// URL). Default: start a private redis-server on a free port and stop it at the end.")
    var addr: String?

    @Option(help: "Operations per throughput phase (SET, HSET).")
    var ops: Int = 1_000_000

    @Option(help: "Operations of the pipelined Lua compare-and-set phase.")
    var casOps: Int = 200_000

    @Option(help: "Commands per pipeline.")
    var pipeline: Int = 1_000

    @Option(help: "Connections (concurrent pipelines).")
    var connections: Int = 2

    @Option(help: "Single-command round trips measured for the latency phase.")
    var latencySamples: Int = 20_000

    @Option(help: "redis-server binary used when --addr is not given.")
    var redisServer: String = "redis-server"

    func validate() throws {
        guard ops > 0, casOps >= 0, pipeline > 0, connections > 0, latencySamples > 0 else {
            throw ValidationError("--ops, --pipeline, --connections and --latency-samples must be positive")
        }
    }

    func run() async throws {
        var logger = Logger(label: "redis-bench")
        logger.logLevel = .warning

        var server: PrivateRedisServer?
        let address: String
        if let addr {
            address = addr
        } else {
            let started = try await PrivateRedisServer.start(executable: redisServer)
            server = started
            address = started.address
        }
        defer { server?.stop() }

        var configuration = try RedisConfiguration(address: address)
        configuration.poolSize = connections
        configuration.commandTimeout = .seconds(30)
        let client = RedisClient(configuration: configuration, logger: logger)

        print("redis-bench: cores=\(ProcessInfo.processInfo.activeProcessorCount) redis=\(configuration)\(server == nil ? "" : " (private redis-server)") connections=\(connections) pipeline=\(pipeline)")
        do {
            _ = try await client.ping()
            let prefix = "bench:\(UInt32.random(in: 0...UInt32.max))"

            try await throughput(client, name: "SET (pipelined)", total: ops) { i in
                ["SET", .string("\(prefix):k:\(i % 100_000)"), .string("value-\(i)")]
            }
            try await throughput(client, name: "HSET (pipelined)", total: ops) { i in
                ["HSET", .string("\(prefix):h:\(i % 1_000)"), .string("m\(i % 16)"), .string(#"{"version":\#(i)}"#)]
            }
            if casOps > 0 { try await casThroughput(client, prefix: prefix) }
            try await latency(client, name: "GET round trip", samples: latencySamples) {
                _ = try await client.get("\(prefix):k:1")
            }
            try await latency(client, name: "SET round trip", samples: latencySamples) {
                try await client.set("\(prefix):lat", to: "x")
            }
            var version: Int64 = 0
            try await latency(client, name: "Lua CAS round trip", samples: latencySamples) {
                version += 1
                _ = try await client.setIfNewerVersion(key: "\(prefix):cas:lat", field: "1x2", version: version, json: #"{"version":\#(version)}"#)
            }
            // Clean up the keys of this run (the private server disappears anyway).
            if server == nil {
                var cursor = "0"
                repeat {
                    let reply = try await client.send("SCAN", cursor, "MATCH", "\(prefix):*", "COUNT", 10_000)
                    guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].string, let keys = parts[1].array else { break }
                    cursor = next
                    let names = keys.compactMap(\.string)
                    if !names.isEmpty { try await client.del(names) }
                } while cursor != "0"
            }
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    /// `total` commands in pipelines of `pipeline`, spread over `connections` concurrent workers.
    private func throughput(
        _ client: RedisClient,
        name: String,
        total: Int,
        command: @escaping @Sendable (Int) -> [RedisArgument]
    ) async throws {
        let batchSize = pipeline
        let batches = (total + batchSize - 1) / batchSize
        let workers = connections
        let start = ContinuousClock.now
        let errors = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var errors = 0
                    var batch = worker
                    while batch < batches {
                        let from = batch * batchSize
                        let to = min(total, from + batchSize)
                        var commands: [[RedisArgument]] = []
                        commands.reserveCapacity(to - from)
                        for i in from..<to { commands.append(command(i)) }
                        for result in try await client.pipeline(commands) {
                            if case .failure = result { errors += 1 }
                        }
                        batch += workers
                    }
                    return errors
                }
            }
            return try await group.reduce(0, +)
        }
        report(name: name, operations: total, errors: errors, elapsed: ContinuousClock.now - start)
    }

    /// The odds write path: `RedisScript.setIfNewerVersion` via pipelined EVALSHA, 1,000 events x
    /// 3 markets, versions increasing, plus 10% stale replays.
    private func casThroughput(_ client: RedisClient, prefix: String) async throws {
        let total = casOps
        let batchSize = pipeline
        let batches = (total + batchSize - 1) / batchSize
        let workers = connections
        let markets = ["1x2", "ou_2_5", "btts"]
        let start = ContinuousClock.now
        let (applied, stale, errors) = try await withThrowingTaskGroup(of: (Int, Int, Int).self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var applied = 0, stale = 0, errors = 0
                    var batch = worker
                    while batch < batches {
                        let from = batch * batchSize
                        let to = min(total, from + batchSize)
                        var invocations: [RedisClient.ScriptInvocation] = []
                        invocations.reserveCapacity(to - from)
                        for i in from..<to {
                            // Every 10th invocation replays one from earlier in the same pipeline
                            // (a duplicate delivery), which the script must reject as stale.
                            let source = (i % 10 == 9 && i - 9 >= from) ? i - 9 : i
                            // Each worker owns its events, so versions per field only increase.
                            let event = (source / markets.count) % 1_000 * workers + worker
                            let market = markets[source % markets.count]
                            let version = source / (markets.count * 1_000) + 1
                            let json = #"{"event_id":"E\#(event)","market":"\#(market)","odds":{"home":2.15,"away":3.6},"version":\#(version)}"#
                            invocations.append(.init(keys: ["\(prefix):odds:current:E\(event)"], arguments: [market, version, json]))
                        }
                        for result in try await client.evalSHA(.setIfNewerVersion, invocations: invocations) {
                            switch result {
                            case .success(.integer(1)): applied += 1
                            case .success: stale += 1
                            case .failure: errors += 1
                            }
                        }
                        batch += workers
                    }
                    return (applied, stale, errors)
                }
            }
            var sum = (0, 0, 0)
            for try await part in group { sum = (sum.0 + part.0, sum.1 + part.1, sum.2 + part.2) }
            return sum
        }
        report(name: "Lua CAS EVALSHA (pipelined)", operations: total, errors: errors, elapsed: ContinuousClock.now - start,
               extra: "applied=\(applied) stale=\(stale)")
    }

    private func latency(_ client: RedisClient, name: String, samples: Int, _ operation: () async throws -> Void) async throws {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for _ in 0..<min(1_000, samples) { try await operation() }  // warm-up
        let start = ContinuousClock.now
        for _ in 0..<samples {
            let t0 = ContinuousClock.now
            try await operation()
            let micros = (ContinuousClock.now - t0) / .microseconds(1)
            _ = histogram.record(UInt64(max(0, micros.rounded())))
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(
            format: "%@ %9d ops  %10.0f ops/s  p50=%lluus p90=%lluus p99=%lluus p99.9=%lluus max=%lluus",
            padded(name) as NSString, samples, Double(samples) / seconds,
            histogram.valueAtPercentile(50), histogram.valueAtPercentile(90), histogram.valueAtPercentile(99),
            histogram.valueAtPercentile(99.9), histogram.max
        ))
    }

    private func padded(_ name: String) -> String {
        name.count >= 30 ? name : name + String(repeating: " ", count: 30 - name.count)
    }

    private func report(name: String, operations: Int, errors: Int, elapsed: Duration, extra: String = "") {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(
            format: "%@ %9d ops  %10.0f ops/s  %.2fs  errors=%d %@",
            padded(name) as NSString, operations, Double(operations) / seconds, seconds, errors, extra as NSString
        ))
    }
}

/// A redis-server child process on a free loopback port (no persistence), stopped at the end.
final class PrivateRedisServer: @unchecked Sendable {
    let process: Process
    let port: Int
    var address: String { "127.0.0.1:\(port)" }

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    static func start(executable: String) async throws -> PrivateRedisServer {
        let port = try freePort()
        let process = Process()
        process.executableURL = try locate(executable)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let server = PrivateRedisServer(process: process, port: port)
        let client = RedisClient(configuration: try RedisConfiguration(address: server.address))
        defer { Task { await client.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if (try? await client.ping()) == "PONG" { return server }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        server.stop()
        throw ValidationError("could not start \(executable) on port \(port)")
    }

    /// SIGKILL: the data is throwaway, and a child started through Foundation's `Process` on
    /// Linux may inherit a signal mask that blocks SIGTERM.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
    }

    private static func locate(_ name: String) throws -> URL {
        if name.contains("/") { return URL(fileURLWithPath: name) }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw ValidationError("\(name) not found on PATH; pass --addr host:port")
    }

    private static func freePort() throws -> Int {
        guard let port = BlockingSocket.freeLoopbackPort() else { throw ValidationError("no free port on 127.0.0.1") }
        return port
    }
}
