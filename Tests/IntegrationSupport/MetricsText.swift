/// Reading samples out of a Prometheus text exposition (`GET /metrics`).
public enum MetricsText {
    /// The value of one sample, e.g. `odds_supplier_connections` or
    /// `odds_supplier_frames_sent_total{kind="valid"}`; 0 when absent.
    public static func value(_ name: String, in text: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1)) ?? 0
        }
        return 0
    }

    /// Sum of every sample whose line starts with `prefix` (all label values of a metric).
    public static func sum(prefix: String, in text: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.reduce(0) { total, line in
            total + (line.split(separator: " ").last.flatMap { Double($0) } ?? 0)
        }
    }
}
