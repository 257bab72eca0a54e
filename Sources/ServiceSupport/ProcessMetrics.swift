import Foundation
import Prometheus

/// Resident memory, CPU time and open descriptors of this process, read from /proc when
/// `/metrics` is scraped (the standard `process_*` names, so dashboards can chart RSS and CPU
/// per service). On systems without /proc the series simply stay absent.
final class ProcessMetrics: Sendable {
    private let residentMemory: Gauge
    private let openDescriptors: Gauge
    private let cpuSeconds: Counter
    private let startTime: Gauge
    /// CPU seconds already added to the counter (it only moves by the difference).
    private let reportedCPU = LockedValue<Double>(0)
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    private static let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))

    init(registry: PrometheusCollectorRegistry) {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "process", metricName: metric, unitName: unit, helpText: help)
        }
        residentMemory = registry.makeGauge(descriptor: name("resident_memory", "bytes", "Resident set size."))
        openDescriptors = registry.makeGauge(descriptor: name("open", "fds", "Open file descriptors."))
        cpuSeconds = registry.makeCounter(descriptor: name("cpu", "seconds_total", "User and system CPU time."))
        startTime = registry.makeGauge(descriptor: name("start_time", "seconds", "Start time, seconds since the epoch."))
        startTime.set(Date().timeIntervalSince1970)
    }

    /// One instance per registry (a registry refuses a second metric of the same name).
    static func shared(registry: PrometheusCollectorRegistry) -> ProcessMetrics {
        instances.withLock { instances in
            let key = ObjectIdentifier(registry)
            if let existing = instances[key] { return existing }
            let created = ProcessMetrics(registry: registry)
            instances[key] = created
            return created
        }
    }

    private static let instances = LockedValue<[ObjectIdentifier: ProcessMetrics]>([:])

    func update() {
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Double(fields[1]) { residentMemory.set(pages * Self.pageSize) }
        }
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let end = stat.lastIndex(of: ")") {
            // Fields after the command name: state is field 3, utime 14, stime 15.
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
                let total = (user + system) / Self.ticksPerSecond
                let delta = reportedCPU.withLock { reported -> Double in
                    let delta = max(0, total - reported)
                    reported = max(reported, total)
                    return delta
                }
                if delta > 0 { cpuSeconds.increment(by: delta) }
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openDescriptors.set(Double(entries.count))
        }
    }
}
