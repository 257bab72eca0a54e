import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

public enum MetricsSetup {
    /// The registry `/metrics` renders; installed as the swift-metrics backend once per process.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        registry.withLock { existing in
            if let existing { return existing }
            let created = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: created)
            // Fine below 10 ms: the pipeline's stages take single milliseconds, and a p50 goal of
            // 5 ms needs buckets that can tell 3 ms from 5 ms.
            factory.defaultDurationHistogramBuckets = [
                .microseconds(250), .microseconds(500), .microseconds(750), .milliseconds(1), .milliseconds(1.5),
                .milliseconds(2), .milliseconds(3), .milliseconds(4), .milliseconds(5), .milliseconds(7.5),
                .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
            ]
            MetricsSystem.bootstrap(factory)
            existing = created
            return created
        }
    }

    private static let registry = LockedValue<PrometheusCollectorRegistry?>(nil)
}

/// A named dependency check for `/readyz` (e.g. "kafka", "redis", "postgres").
public struct ReadinessCheck: Sendable {
    public let name: String
    public let check: @Sendable () async -> Bool

    public init(name: String, check: @escaping @Sendable () async -> Bool) {
        self.name = name
        self.check = check
    }
}

/// The answer of `/readyz`.
public struct ReadinessReport: Codable, Sendable, Equatable {
    public var ready: Bool
    public var checks: [String: Bool]
}

/// Runs all readiness checks concurrently, each bounded by `timeout` (a hung dependency is "not ready").
public func evaluateReadiness(_ checks: [ReadinessCheck], timeout: Duration = .seconds(2)) async -> ReadinessReport {
    let results = await withTaskGroup(of: (String, Bool).self) { group in
        for check in checks {
            group.addTask {
                await withTaskGroup(of: Bool?.self) { race in
                    race.addTask { await check.check() }
                    race.addTask {
                        try? await Task.sleep(for: timeout)
                        return nil
                    }
                    let first = await race.next() ?? nil
                    race.cancelAll()
                    return (check.name, first ?? false)
                }
            }
        }
        var results: [String: Bool] = [:]
        for await (name, ok) in group { results[name] = ok }
        return results
    }
    return ReadinessReport(ready: results.values.allSatisfy { $0 }, checks: results)
}

/// The operations endpoint every service runs on its metrics port: `/healthz` (the process is
/// alive), `/readyz` (its dependencies answer; 503 otherwise), `/metrics` (Prometheus text).
public enum OperationsServer {
    public static func router(
        registry: PrometheusCollectorRegistry,
        readiness: [ReadinessCheck]
    ) -> Router<BasicRequestContext> {
        let router = Router()
        let process = ProcessMetrics.shared(registry: registry)
        router.get("/healthz") { _, _ -> Response in
            jsonResponse(.ok, #"{"status":"ok"}"#)
        }
        router.get("/readyz") { _, _ -> Response in
            let report = await evaluateReadiness(readiness)
            let body = (try? ContractJSON.encoder.encode(report)) ?? Data()
            return jsonResponse(report.ready ? .ok : .serviceUnavailable, String(decoding: body, as: UTF8.self))
        }
        router.get("/metrics") { _, _ -> Response in
            process.update()
            var buffer: [UInt8] = []
            buffer.reserveCapacity(16 * 1024)
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        return router
    }

    /// A Hummingbird application (a swift-service-lifecycle `Service`) serving the router above.
    public static func application(
        host: String = "0.0.0.0",
        port: Int,
        registry: PrometheusCollectorRegistry,
        readiness: [ReadinessCheck],
        logger: Logger
    ) -> some ApplicationProtocol {
        Application(
            router: router(registry: registry, readiness: readiness),
            configuration: .init(address: .hostname(host, port: port), serverName: "odds-operations"),
            logger: logger)
    }

    static func jsonResponse(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

enum ContractJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}
