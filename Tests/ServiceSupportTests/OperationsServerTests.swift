import Foundation
import Hummingbird
import HummingbirdTesting
import Metrics
import Prometheus
import Testing
@testable import ServiceSupport

@Suite(.timeLimit(.minutes(1))) struct OperationsServerTests {
    @Test func readinessIsTheConjunctionOfChecksAndTimesOut() async {
        let report = await evaluateReadiness([
            ReadinessCheck(name: "fast") { true },
            ReadinessCheck(name: "down") { false },
            ReadinessCheck(name: "hung") {
                try? await Task.sleep(for: .seconds(30))
                return true
            },
        ], timeout: .milliseconds(200))
        #expect(report.ready == false)
        #expect(report.checks == ["fast": true, "down": false, "hung": false])
        #expect(await evaluateReadiness([ReadinessCheck(name: "a") { true }]).ready)
        #expect(await evaluateReadiness([]).ready)
    }

    @Test func servesHealthReadinessAndMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        PrometheusMetricsFactory(registry: registry).makeCounter(label: "odds_test_events_total", dimensions: [("kind", "sample")]).increment(by: 3)
        let dependencyUp = LockedValue(true)
        let router = OperationsServer.router(registry: registry, readiness: [
            ReadinessCheck(name: "redis") { dependencyUp.withLock { $0 } },
        ])
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"status":"ok"}"#)
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"checks":{"redis":true},"ready":true}"#)
            }
            dependencyUp.withLock { $0 = false }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains(#""ready":false"#))
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                #expect(String(buffer: response.body).contains(#"odds_test_events_total{kind="sample"} 3"#))
            }
        }
    }

    @Test func metricsCarryThisProcessResidentMemoryAndCPU() async throws {
        let registry = PrometheusCollectorRegistry()
        let app = Application(router: OperationsServer.router(registry: registry, readiness: []))
        // Burn a little CPU so the counter has something to show.
        var sink = 0
        for index in 0..<2_000_000 { sink &+= index &* 31 }
        #expect(sink != 1)
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                let lines = String(buffer: response.body).split(separator: "\n")
                func value(_ name: String) -> Double? {
                    lines.first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
                }
                // RSS of a test process is tens of MiB at least; CPU time is positive.
                #expect((value("process_resident_memory_bytes") ?? 0) > 1_000_000)
                #expect((value("process_cpu_seconds_total") ?? 0) > 0)
                #expect((value("process_open_fds") ?? 0) >= 3)
            }
        }
    }
}
